"""Delivery transport against real local servers: an HTTP webhook endpoint and aiosmtpd."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

import pytest

from kizashi.contracts.signals import signal_adapter
from kizashi.notifier.render import RenderedEmail, render_email
from kizashi.notifier.transport import (
    SendResult,
    SmtpConfig,
    SmtpSender,
    WebhookSender,
    parse_retry_after,
)
from kizashi.runtime.retry import RetryPolicy
from tests.support.smtp_server import recording_smtp_server
from tests.support.webhook_server import Reply, recording_webhook_server

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
PAYLOAD = {"text": "Opportunity: Acme", "blocks": [SECTION]}


async def _deliver(
    send: Callable[[], Awaitable[SendResult]],
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> list[SendResult]:
    """What the delivery worker does with each attempt's result (kizashi.notifier.deliver):
    ask the policy for the next attempt's delay, or stop. The worker keeps the delay as the
    row's next_attempt_at; here it is slept."""
    results = []
    while True:
        results.append(await send())
        delay = policy.next_delay(len(results), results[-1], rng or random.Random())
        if delay is None:
            return results
        await asyncio.sleep(delay)


async def test_webhook_ok_records_the_json_body() -> None:
    async with recording_webhook_server() as hooks, WebhookSender() as sender:
        url = hooks.url("/services/T/B/secret")
        result = await sender.send(url, PAYLOAD, headers={"X-Kizashi-Delivery-Id": "d-1"})
        assert result.ok and result.status == 200 and result.reason == "ok"
        [request] = await hooks.wait_for(1)
        assert request.path == "/services/T/B/secret" and request.method == "POST"
        assert request.json == PAYLOAD and request["text"] == "Opportunity: Acme"
        assert request.headers["x-kizashi-delivery-id"] == "d-1"
        assert request.headers["content-type"].startswith("application/json")


async def test_webhook_rate_limit_is_about_one_per_second_per_webhook() -> None:
    async with recording_webhook_server() as hooks, WebhookSender(rate=1.0, burst=2) as sender:
        started = time.monotonic()
        results = await asyncio.gather(*(sender.send(hooks.url("/a"), PAYLOAD) for _ in range(5)))
        elapsed = time.monotonic() - started
        # Two go at once (the burst), the other three one second apart.
        assert all(r.ok for r in results)
        assert 2.7 <= elapsed < 4.5
        times = [r.at for r in hooks.requests]
        assert times[1] - times[0] < 0.5 and times[4] - times[2] >= 1.8
        # Another webhook has its own bucket and is not held back by /a.
        started = time.monotonic()
        assert (await sender.send(hooks.url("/b"), PAYLOAD)).ok
        assert time.monotonic() - started < 0.5


async def test_webhook_429_is_retried_after_retry_after() -> None:
    async with recording_webhook_server() as hooks, WebhookSender(rate=100, burst=5) as sender:
        hooks.respond_with("/hook", [429])
        url = hooks.url("/hook")
        first = await sender.send(url, PAYLOAD)
        assert first.retryable and first.status == 429 and first.retry_after == 1.0
        assert "rate_limited" in first.reason
        # The worker schedules the next attempt when the receiver said, not by backoff.
        policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.05)
        assert policy.next_delay(1, first, random.Random()) == 1.0
        [result] = await _deliver(lambda: sender.send(url, PAYLOAD), policy)
        assert result.ok
        # The 429 also paused the webhook's bucket: that send waited out the Retry-After.
        assert hooks.requests[1].at - hooks.requests[0].at >= 0.9


async def test_long_retry_after_is_not_waited_for_in_memory() -> None:
    async with recording_webhook_server() as hooks, WebhookSender(rate=100, burst=5) as sender:
        hooks.respond_with("/hook", [Reply(429, headers={"Retry-After": "120"})])
        first = await sender.send(hooks.url("/hook"), PAYLOAD)
        assert first.retryable and first.retry_after == 120.0
        started = time.monotonic()
        second = await sender.send(hooks.url("/hook"), PAYLOAD)
        assert time.monotonic() - started < 0.5 and len(hooks.requests) == 1
        assert second.retryable and second.retry_after is not None and second.retry_after > 100


async def test_retry_after_is_honoured_then_backoff_then_sent() -> None:
    async with recording_webhook_server() as hooks, WebhookSender(rate=100, burst=5) as sender:
        hooks.respond_with("/hook", [Reply(429, headers={"Retry-After": "1"}), 500])
        url = hooks.url("/hook")
        started = time.monotonic()
        results = await _deliver(
            lambda: sender.send(url, PAYLOAD),
            RetryPolicy(max_attempts=5, base=0.05, cap=0.1),
            rng=random.Random(1),
        )
        assert [r.status for r in results] == [429, 500, 200] and results[-1].ok
        assert time.monotonic() - started >= 0.95
        assert hooks.requests[1].at - hooks.requests[0].at >= 0.95


async def test_webhook_500_is_retryable_until_attempts_run_out() -> None:
    async with recording_webhook_server() as hooks, WebhookSender(rate=100, burst=5) as sender:
        hooks.respond_with("/hook", [500, 500, 503])
        results = await _deliver(
            lambda: sender.send(hooks.url("/hook"), PAYLOAD),
            RetryPolicy(max_attempts=3, base=0.01, cap=0.02),
        )
        result = results[-1]
        assert result.retryable and len(results) == 3 and result.status == 503
        assert result.reason == "HTTP 503: service_unavailable"
        assert len(hooks.requests) == 3


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "no_service"), (410, "channel_is_archived"), (400, "invalid_payload")],
)
async def test_webhook_4xx_is_permanent_with_slacks_reason(status: int, body: str) -> None:
    async with recording_webhook_server() as hooks, WebhookSender(rate=100, burst=5) as sender:
        hooks.respond_with("/hook", [status])
        [result] = await _deliver(
            lambda: sender.send(hooks.url("/hook"), PAYLOAD), RetryPolicy(max_attempts=5)
        )
        assert result.permanent
        assert result.status == status and result.reason == f"HTTP {status}: {body}"


async def test_webhook_timeout_and_connection_refused_are_retryable() -> None:
    async with recording_webhook_server() as hooks:
        hooks.respond_with("/slow", [Reply(200, delay=2.0)])
        async with WebhookSender(timeout=0.3) as sender:
            result = await sender.send(hooks.url("/slow"), PAYLOAD)
        assert result.retryable and result.reason.startswith("timeout")
        dead_url = hooks.url("/hook")
    # The server is gone now, so its port refuses connections.
    async with WebhookSender() as sender:
        result = await sender.send(dead_url, PAYLOAD)
    assert result.retryable and result.status is None
    assert "/hook" not in result.reason


async def test_webhook_urls_never_reach_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx's own level too: a service configured in this process earlier (configure_logging)
    # leaves it at WARNING, and its request line would then never be written at all.
    caplog.set_level(logging.DEBUG, logger="httpx")
    async with recording_webhook_server() as hooks, WebhookSender() as sender:
        assert (await sender.send(hooks.url("/services/T0/B0/TOPSECRET"), PAYLOAD)).ok
    assert "TOPSECRET" not in caplog.text
    # httpx did log the request, with the URL cut down to its host.
    assert "HTTP Request: POST http://127.0.0.1:" in caplog.text and "/…" in caplog.text


async def test_smtp_delivers_text_and_html_parts() -> None:
    signal_email = _rendered_email()
    async with recording_smtp_server() as smtp:
        sender = SmtpSender.from_url(smtp.url, sender="Kizashi <kizashi@example.com>")
        result = await sender.send(
            ["ana@example.com", "lead@example.com"],
            signal_email.subject,
            signal_email.text,
            signal_email.html,
            headers={"X-Kizashi-Signal-Id": "sig-1", "Message-ID": "<d-1@kizashi>"},
        )
        assert result.ok and result.status == 250
        [message] = await smtp.wait_for(1)
        [envelope] = smtp.envelopes
    assert envelope.mail_from == "kizashi@example.com"
    assert envelope.rcpt_tos == ["ana@example.com", "lead@example.com"]
    assert message["Subject"] == "Opportunity: Acme Corp — upsell intent 9/10"
    assert message["To"] == "ana@example.com, lead@example.com"
    assert message["X-Kizashi-Signal-Id"] == "sig-1"
    assert message.get_all("Message-ID") == ["<d-1@kizashi>"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Suggested play\nOffer the upgrade & a demo." in text
    assert "Offer the upgrade &amp; a demo." in html and "<h2" in html
    assert "https://k.example/ack?t=1&amp;a=ack" in html


async def test_smtp_with_login() -> None:
    async with recording_smtp_server(auth=("kizashi", "p@ss:word")) as smtp:
        url = f"smtp://kizashi:p%40ss%3Aword@{smtp.host}:{smtp.port}"
        sender = SmtpSender.from_url(url, sender="kizashi@example.com")
        assert "p@ss" not in repr(sender) and "***" in repr(sender)
        assert (await sender.send(["ana@example.com"], "s", "t", "<p>h</p>")).ok
        await smtp.wait_for(1)
        assert smtp.envelopes[0].login == "kizashi"
        wrong = SmtpSender.from_url(f"smtp://kizashi:nope@{smtp.host}:{smtp.port}", sender="k@x.io")
        result = await wrong.send(["ana@example.com"], "s", "t", "<p>h</p>")
        assert result.permanent and result.status == 535 and "nope" not in result.reason


async def test_smtp_4xx_retryable_5xx_permanent_and_unreachable_retryable() -> None:
    async with recording_smtp_server() as smtp:
        smtp.respond_with(["451 4.3.0 Try again later", "554 5.7.1 Message rejected"])
        sender = SmtpSender.from_url(smtp.url, sender="kizashi@example.com")
        soft = await sender.send(["a@example.com"], "s", "t", "<p>h</p>")
        hard = await sender.send(["a@example.com"], "s", "t", "<p>h</p>")
        assert soft.retryable and soft.status == 451 and "Try again later" in soft.reason
        assert hard.permanent and hard.status == 554
        assert smtp.messages == []
        url = smtp.url
    gone = await SmtpSender.from_url(url, sender="k@example.com", timeout=2).send(
        ["a@example.com"], "s", "t", "<p>h</p>"
    )
    assert gone.retryable and gone.status is None


def test_smtp_url_parsing() -> None:
    config = SmtpConfig.from_url("smtp://u%40x:secret@mail.example.com:587?starttls=true")
    assert (config.host, config.port, config.username, config.password) == (
        "mail.example.com",
        587,
        "u@x",
        "secret",
    )
    assert config.starttls and not config.implicit_tls and "secret" not in repr(config)
    assert SmtpConfig.from_url("smtps://mail.example.com").port == 465
    assert SmtpConfig.from_url("smtp://localhost").port == 25
    with pytest.raises(ValueError, match="smtp://"):
        SmtpConfig.from_url("http://user:secret@x")


def test_backoff_is_exponential_with_full_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(60.0, 0.5 * 2 ** (attempt - 1))
        delays = [RetryPolicy(base=0.5, cap=60.0).backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spans the whole range
    assert RetryPolicy(base=1, cap=5).backoff(10_000, rng) <= 5
    policy = RetryPolicy(max_attempts=3, base=1, cap=10)
    assert policy.next_delay(1, SendResult("retry", retry_after=7.0), rng) == 7.0
    assert policy.next_delay(3, SendResult("retry"), rng) is None
    assert policy.next_delay(1, SendResult("failed"), rng) is None


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def _rendered_email() -> RenderedEmail:
    signal = signal_adapter.validate_python(
        {
            "kind": "opportunity",
            "signal_id": "sig-1",
            "rule": "upsell_intent",
            "account_id": "acme",
            "priority": "high",
            "episode": "e1",
            "fired_at": datetime(2025, 1, 10, 9, 30, tzinfo=UTC),
            "reasons": ["Upsell intent 9/10 in the Q1 survey"],
            "suggested_play": "Offer the upgrade & a demo.",
            "account": {
                "account_id": "acme",
                "name": "Acme Corp",
                "renewal_date": date(2025, 3, 1),
                "owner_email": "ana@example.com",
            },
            "scores": {"cs": 70, "op": 80, "segment": "expand", "priority": "high"},
        }
    )
    return render_email(signal, ack_url="https://k.example/ack?t=1&a=ack", snooze_url=None)
