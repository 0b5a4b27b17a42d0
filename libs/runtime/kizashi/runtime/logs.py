"""Structured JSON log lines. Secrets never reach a log line: settings hold them as SecretStr."""

import contextvars
import logging
import sys
from datetime import UTC, datetime

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
# Fields a caller may pass as `extra=` to give a line its context. Never a key, token or URL.
_CONTEXT_FIELDS = (
    "event_id",
    "signal_id",
    "account_id",
    "topic",
    "partition",
    "offset",
    "delivery_id",
    "digest_key",
    "kind",
    "rule",
    "channel",
    "outcome",
    "error_type",
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Request-level lines from uvicorn and httpx repeat what the metrics count.
    # aiokafka's group chatter (joins, assignments) at INFO drowns the alerts `kizashi up` prints.
    for noisy in ("uvicorn.access", "httpx", "httpcore", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
