"""Prometheus metrics shared by every service (names: `kizashi_` prefix, units, `_total`).

Service-specific metrics live next to the code that moves them. No metric takes an account id
as a label: the label sets here are small and fixed.
"""

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "kizashi_http_requests_total",
    "HTTP requests served, by route template, method and status code",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "kizashi_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)
KAFKA_PRODUCE_DURATION = Histogram(
    "kizashi_kafka_produce_duration_seconds",
    "Time from the first send of a batch to the broker acknowledging all of it (acks=all)",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
KAFKA_PRODUCED = Counter(
    "kizashi_kafka_produced_records_total",
    "Records acknowledged by the broker",
    ["service", "topic"],
)
CONSUMED_RECORDS = Counter(
    "kizashi_consumer_records_total", "Records consumed and committed", ["service", "topic"]
)
CONSUMED_BATCHES = Counter(
    "kizashi_consumer_batches_total", "Batches processed and committed", ["service"]
)
BATCH_DURATION = Histogram(
    "kizashi_consumer_batch_duration_seconds",
    "Time to process one batch, commit included",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "kizashi_consumer_lag_records",
    "Records between the committed position and the high watermark",
    ["service", "topic", "partition"],
)
CONSUMER_LAST_PROGRESS = Gauge(
    "kizashi_consumer_last_progress_timestamp_seconds",
    "When the consumer last committed a batch or found nothing to do",
    ["service"],
)
DEAD_LETTERS = Counter(
    "kizashi_dead_letters_total",
    "Records sent to the dead-letter topic, by origin topic and error type",
    ["service", "topic", "error_type"],
)
CONSUMER_RETRIES = Counter(
    "kizashi_consumer_retries_total",
    "Batches retried after a transient failure (database or broker unavailable)",
    ["service", "reason"],
)
PERIODIC_TASK_RUNS = Counter(
    "kizashi_periodic_task_runs_total",
    "Runs of a periodic task (scoring's and triggers' sweeps, …), by outcome (ok, failed)",
    ["service", "task", "outcome"],
)
PERIODIC_TASK_LAST_SUCCESS = Gauge(
    "kizashi_periodic_task_last_success_timestamp_seconds",
    "When a periodic task last finished without an error",
    ["service", "task"],
)
DB_POOL_CONNECTIONS = Gauge(
    "kizashi_db_pool_connections",
    "Database pool connections by state (in use or idle)",
    ["service", "state"],
)
DB_POOL_MAX_CONNECTIONS = Gauge(
    "kizashi_db_pool_max_connections",
    "The most connections the database pool may open (pool size plus overflow)",
    ["service"],
)
