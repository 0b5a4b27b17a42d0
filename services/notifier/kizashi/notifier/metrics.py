from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "kizashi_notifier_deliveries_total",
    "Delivery attempts by channel and outcome (sent, retry, failed)",
    ["channel", "outcome"],
)
DELIVERY_RETRIES = Counter(
    "kizashi_notifier_delivery_retries_total",
    "Deliveries scheduled for another attempt",
    ["channel"],
)
DELIVERIES_FAILED = Counter(
    "kizashi_notifier_deliveries_failed_total",
    "Deliveries given up on (marked failed and dead-lettered)",
    ["channel"],
)
END_TO_END_LATENCY = Histogram(
    "kizashi_end_to_end_latency_seconds",
    "From the event's arrival at ingest (received_at) to the alert's delivery",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
DIGESTS = Counter(
    "kizashi_notifier_digests_total",
    "Digest messages by channel and outcome (sent, retry, failed)",
    ["channel", "outcome"],
)
DIGEST_SIGNALS = Histogram(
    "kizashi_notifier_digest_signals",
    "How many signals a sent digest carried",
    ["channel"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250),
)
# The daily budget per rep (kizashi.contracts.budget). Labelled by receiver only: an owner's
# address would be personal data in a label, and one series per rep.
ALERTS_WITHIN_BUDGET = Counter(
    "kizashi_notifier_alerts_within_budget_total",
    "Alerts to an owner sent at once, within their daily budget",
    ["receiver"],
)
ALERTS_DEFERRED = Counter(
    "kizashi_notifier_alerts_deferred_total",
    "Alerts to an owner over their daily budget, deferred to their next digest",
    ["receiver"],
)
