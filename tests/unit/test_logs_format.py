"""JSON log lines: one object per line with the service, request id and trace ids; settings
printed by mistake show their secrets masked."""

import logging

import orjson

from kizashi.runtime.logs import JsonFormatter, request_id_var
from kizashi.tools.settings import ToolSettings


def _format(message: str, *args, **extra) -> dict:
    record = logging.LogRecord("kizashi.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return orjson.loads(JsonFormatter("notifier").format(record))


def test_a_line_carries_service_request_and_trace_ids():
    token = request_id_var.set("req-1")
    try:
        line = _format("delivery %s", "sent", signal_id="s1", delivery_id="d1", channel="slack")
    finally:
        request_id_var.reset(token)
    assert line["service"] == "notifier" and line["msg"] == "delivery sent"
    assert line["request_id"] == "req-1"
    assert (line["signal_id"], line["delivery_id"], line["channel"]) == ("s1", "d1", "slack")
    assert "request_id" not in _format("outside a request")


def test_settings_logged_by_mistake_keep_their_secrets():
    settings = ToolSettings(
        ingest_keys="web:ingest-secret-1",
        api_token="api-secret-2",
        slack_webhook_url="https://hooks.slack.com/services/T0/B0/hook-secret-3",
        smtp_url="smtp://user:smtp-secret-4@mail.example:587",
        action_secret="action-secret-5",
    )
    text = orjson.dumps(_format("settings: %s %r", settings, settings)).decode()
    for secret in ("ingest-secret-1", "api-secret-2", "hook-secret-3", "smtp-secret-4",
                   "action-secret-5"):  # fmt: skip
        assert secret not in text
