"""Hard limits on what one request may carry (architecture §2.1, §5.11)."""

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS_PER_BATCH = 1000
MAX_EVENT_BYTES = 32 * 1024
MAX_FUTURE_SKEW_S = 300
# How long a client should wait before retrying when the broker is away.
RETRY_AFTER_S = 5
