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
