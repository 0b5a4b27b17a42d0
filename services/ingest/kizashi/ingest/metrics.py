from prometheus_client import Counter

EVENTS_ACCEPTED = Counter(
    "kizashi_ingest_events_accepted_total",
    "Events acknowledged by Kafka and answered 2xx, by event type",
    ["type"],
)
EVENTS_REJECTED = Counter(
    "kizashi_ingest_events_rejected_total",
    "Events refused, by reason (invalid, future, too_large, broker_unavailable, unauthorized)",
    ["reason"],
)
