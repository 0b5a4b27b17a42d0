"""The `webhook` receiver through the notifier's own path: the consumer's routing records the
delivery in PostgreSQL, the delivery worker (`deliver_due`) sends it through the shared
pace, and a local HTTP receiver verifies each request's Standard Webhooks signature with
the library's `Webhook.verify`, answering 401 when it does not verify, as a CRM's endpoint
would. Retries, the attempt log and dead letters are Slack's (architecture §5.7)."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.signals import Retraction
from kizashi.contracts.topics import SIGNAL_TOPICS
from kizashi.notifier import repository
from kizashi.notifier.consumer import delivery_id_for, handle_signals
from kizashi.notifier.deliver import deliver_due, send_once
from kizashi.notifier.pacing import SharedPacer, webhook_key
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import load_routing_config
from kizashi.notifier.samples import sample_signal
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import WebhookSender
from kizashi.notifier.webhook import WebhookSigner, retraction_payload, webhook_payload
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.kafka import Producer, encode
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.retry import RetryPolicy
from kizashi.runtime.settings import Settings
from kizashi.tools.migrate import upgrade_async
from tests.support import infra
from tests.support.notifier_stack import make_signal
from tests.support.webhook_server import recording_webhook_server

# The URL's path holds a token, as a CRM's inbound-hook URL often does: it must stay secret.
HOOK = "/crm/T0KEN-9f3e/hook"
STALE = "/crm/T0KEN-stale/hook"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
ROUTING = """
receivers:
  - {name: crm, type: webhook, url_env: CRM_WEBHOOK_URL, secret_env: CRM_WEBHOOK_SECRET}
  - {name: stale, type: webhook, url_env: STALE_WEBHOOK_URL, secret_env: CRM_WEBHOOK_SECRET}
routes:
  - {match: {owner: stale@crm.test}, receivers: [stale]}
default:
  receivers: [crm]
"""


@pytest.fixture(scope="module")
async def notifier(
    database_url, bootstrap_servers, webhook, tmp_path_factory
) -> AsyncIterator[NotifierState]:
    name = f"kizashi_webhook_{uuid.uuid4().hex[:10]}"
    await infra._create_database(database_url, name)
    url = infra._with_database(database_url, name)
    config_dir: Path = tmp_path_factory.mktemp("webhook-config")
    (config_dir / "routing.yaml").write_text(ROUTING)
    # The receiver checks with the secret Kizashi signs with, except on the stale path
    # (a CRM still holding the secret from before a rotation).
    webhook.verify_signatures(HOOK, SECRET)
    webhook.verify_signatures(STALE, OTHER_SECRET)
    environ = {
        "CRM_WEBHOOK_URL": webhook.url(HOOK),
        "STALE_WEBHOOK_URL": webhook.url(STALE),
        "CRM_WEBHOOK_SECRET": SECRET,
    }
    runtime = ServiceRuntime(service="notifier", settings=Settings(), engine=create_engine(url))
    runtime.producer = Producer(bootstrap_servers, service="notifier")
    await runtime.producer.start()
    try:
        await upgrade_async(url)
        routing = load_routing_config(
            config_dir, slack_webhook_url=None, smtp_configured=False, environ=environ
        )
        yield NotifierState(
            runtime=runtime,
            routing=routing,
            renderer=Renderer(None),
            webhooks=WebhookSender(pacer=SharedPacer(runtime.engine, rate=50)),
            smtp=None,
            retry=RetryPolicy(max_attempts=3, base=0.3, cap=0.3, jitter=False),
            action_secret="webhook-test-secret",
            public_url="http://notifier.test",
            console_url="http://console.test",
        )
    finally:
        await runtime.stop()
        await infra._drop_database(database_url, name)


async def _consume(service: NotifierState, *signals) -> None:
    """The consumer's own handler, on records as the broker hands them over."""
    records = [
        ConsumerRecord(
            SIGNAL_TOPICS[s.kind], 0, i, 0, 0, s.account_id.encode(), encode(s), None, 0, 0, ()
        )  # fmt: skip
        for i, s in enumerate(signals)
    ]
    assert await handle_signals(service, records) == []


async def _delivery(service: NotifierState, signal) -> dict:
    async with raw_transaction(service.engine) as connection:
        [row] = await repository.list_deliveries(
            conn=connection, signal_id=signal.signal_id, status=None, channel=None, limit=5
        )
    return row


async def _deliver_until(service: NotifierState, signal, status: str) -> dict:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while (row := await _delivery(service, signal))["status"] != status:
        assert datetime.now(UTC) < deadline, f"never {status}: {row}"
        await deliver_due(service)
        await asyncio.sleep(0.1)
    return row


def _to(webhook, path: str, signal) -> list:
    return [r for r in webhook.requests_to(path) if signal.signal_id in r.body.decode()]


async def test_a_signal_is_posted_signed_and_the_receiver_verifies_it(notifier, webhook) -> None:
    signal = make_signal("ana@crm.test", name="Acme Corp")
    await _consume(notifier, signal)
    row = await _deliver_until(notifier, signal, "sent")
    assert row["channel"] == "webhook" and row["receiver"] == "crm"
    assert [(a["outcome"], a["status_code"]) for a in row["attempt_log"]] == [("sent", 200)]

    [request] = _to(webhook, HOOK, signal)
    assert request.verified is True and request.status == 200
    delivery_id = delivery_id_for(signal.signal_id, "crm")
    assert request.headers["webhook-id"] == delivery_id == row["delivery_id"]
    assert request.headers["x-kizashi-delivery-id"] == delivery_id
    assert request.headers["webhook-signature"].startswith("v1,")
    sent_at = int(request.headers["webhook-timestamp"])
    assert abs(sent_at - datetime.now(UTC).timestamp()) < 60
    assert request.headers["content-type"].startswith("application/json")

    body = request.json
    assert body["type"] == "kizashi.signal" and body["version"] == 1
    data = body["data"]
    assert data["signal_id"] == signal.signal_id and data["rule"] == signal.rule
    assert data["account"]["id"] == signal.account_id and data["account"]["name"] == "Acme Corp"
    assert data["owner"]["email"] == "ana@crm.test"
    assert data["reasons"] == signal.reasons and data["next_step"] == signal.suggested_play
    assert data["scores"]["cs"] == signal.scores.cs
    links = data["links"]
    assert links["console"] == f"http://console.test/signals/{signal.signal_id}"
    assert links["acknowledge"].startswith("http://notifier.test/v1/actions/")

    # The send took its slot from the shared pace, keyed by a digest of the URL (never it).
    async with raw_transaction(notifier.engine) as connection:
        keys = {r["webhook_key"] for r in await connection.fetch("SELECT * FROM webhook_pacing")}
    assert webhook_key(webhook.url(HOOK)) in keys


async def test_a_tampered_body_does_not_verify(notifier, webhook) -> None:
    signal = make_signal("tamper@crm.test", name="Honest Ltd")
    await _consume(notifier, signal)
    await _deliver_until(notifier, signal, "sent")
    [original] = _to(webhook, HOOK, signal)
    headers = {k: v for k, v in original.headers.items() if k.startswith("webhook-")}
    tampered = original.body.replace(b"Honest Ltd", b"Hacked Ltd")
    assert tampered != original.body
    async with httpx.AsyncClient() as client:
        refused = await client.post(webhook.url(HOOK), content=tampered, headers=headers)
        replayed = await client.post(webhook.url(HOOK), content=original.body, headers=headers)
    assert refused.status_code == 401
    assert replayed.status_code == 200  # the same headers with the body as signed still pass
    assert [r.verified for r in webhook.requests_to(HOOK)[-2:]] == [False, True]


async def test_500_is_retried_then_sent_under_the_same_webhook_id(
    notifier, webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook.respond_with(HOOK, [500])
    signal = make_signal("retry@crm.test")
    await _consume(notifier, signal)
    row = await _deliver_until(notifier, signal, "sent")
    log = row["attempt_log"]
    assert [(a["outcome"], a["status_code"]) for a in log] == [("retry", 500), ("sent", 200)]
    assert log[0]["error"] == "HTTP 500: internal_error"

    first, second = _to(webhook, HOOK, signal)
    assert first.verified and second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row["delivery_id"]
    # Each attempt is signed when it is sent, over the same signal; only the action links,
    # signed with their expiry at each attempt, may differ (as in a resent Slack message).
    assert _without_links(first.json) == _without_links(second.json)
    _assert_no_secret(caplog.text)


async def test_a_receiver_that_cannot_verify_fails_the_delivery_at_once(
    notifier, webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    signal = make_signal("stale@crm.test")
    await _consume(notifier, signal)
    row = await _deliver_until(notifier, signal, "failed")
    # A 4xx is permanent, as Slack's are: one attempt, not retried.
    assert [(a["outcome"], a["status_code"]) for a in row["attempt_log"]] == [("failed", 401)]
    assert row["last_error"] == "HTTP 401: signature did not verify"
    [request] = _to(webhook, STALE, signal)
    assert request.verified is False
    _assert_no_secret(caplog.text)


async def test_the_receiver_test_sends_a_signed_sample(notifier, webhook) -> None:
    """What POST /v1/receivers/crm/test sends (kizashi.notifier.api.test_receiver)."""
    result = await send_once(notifier, "crm", sample_signal(), delivery_id="test")
    assert result.ok and result.status == 200
    [request] = [r for r in webhook.requests_to(HOOK) if r.headers["webhook-id"] == "test"]
    assert request.verified is True
    assert request.json["data"]["account"]["name"] == "Test account (Kizashi)"


async def _rows(service: NotifierState, signal) -> list[dict]:
    async with raw_transaction(service.engine) as connection:
        return await repository.list_deliveries(
            conn=connection, signal_id=signal.signal_id, status=None, channel=None, limit=10
        )


async def _deliver_all(service: NotifierState, signal, count: int) -> list[dict]:
    """Deliver until the signal has `count` deliveries, none of them pending or sending."""
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while True:
        rows = await _rows(service, signal)
        if len(rows) == count and not {r["status"] for r in rows} & {"pending", "sending"}:
            return rows
        assert datetime.now(UTC) < deadline, f"never {count} settled: {rows}"
        await deliver_due(service)
        await asyncio.sleep(0.1)


def _retracted(signal) -> tuple:
    why = Retraction(at=datetime.now(UTC), reason="product usage on 2026-12-02 arrived late")
    return signal.model_copy(update={"retracted": why}), why


def _retractions(webhook, signal) -> list:
    return [r for r in _to(webhook, HOOK, signal) if r.json["type"] == "kizashi.signal.retracted"]


async def test_a_retraction_posts_one_signed_retracted_event_to_the_webhook(
    notifier, webhook
) -> None:
    signal = make_signal("closed@crm.test", kind="churn_risk", rule="inactivity")
    await _consume(notifier, signal)
    [alert] = await _deliver_all(notifier, signal, 1)
    retracted, why = _retracted(signal)
    # The retraction twice in a batch, and replayed later: one correction all the same.
    await _consume(notifier, retracted, retracted)
    await _consume(notifier, retracted)
    rows = await _deliver_all(notifier, signal, 2)

    correction_id = f"{alert['delivery_id']}:correction"
    assert {(r["delivery_id"], r["status"]) for r in rows} == {
        (alert["delivery_id"], "sent"),
        (correction_id, "sent"),
    }
    [request] = _retractions(webhook, signal)
    assert request.verified is True and request.status == 200
    assert request.headers["webhook-id"] == correction_id
    assert request.json == retraction_payload(retracted, corrects=alert["delivery_id"])
    data = request.json["data"]
    assert data["signal_id"] == signal.signal_id and data["reason"] == why.reason
    assert data["retracted_at"] == why.at.isoformat().replace("+00:00", "Z")


async def test_a_reopened_then_retracted_signal_gets_one_correction_for_its_latest_alert(
    notifier, webhook
) -> None:
    signal = make_signal("reopened@crm.test", kind="churn_risk", rule="usage_drop")
    await _consume(notifier, signal)
    await _deliver_all(notifier, signal, 1)
    # Snoozed, then worse: the same signal again, delivered once more under a new id.
    reopened_at = datetime.now(UTC)
    reopened = signal.model_copy(update={"reopened_at": reopened_at})
    await _consume(notifier, reopened)
    await _deliver_all(notifier, signal, 2)
    again = delivery_id_for(signal.signal_id, "crm", reopened_at)
    [second] = [r for r in _to(webhook, HOOK, signal) if r.headers["webhook-id"] == again]
    assert second.json["data"]["reopened_at"] == reopened_at.isoformat().replace("+00:00", "Z")
    assert second.json["data"]["signal_id"] == signal.signal_id

    retracted, _ = _retracted(reopened)
    await _consume(notifier, retracted)
    rows = await _deliver_all(notifier, signal, 3)
    corrections = [r for r in rows if r["delivery_id"].endswith(":correction")]
    assert [(r["delivery_id"], r["status"]) for r in corrections] == [
        (f"{again}:correction", "sent")
    ]
    [request] = _retractions(webhook, signal)
    assert request.verified and request.json["data"]["corrects"] == again


def _without_links(body: dict) -> dict:
    return {**body, "data": {k: v for k, v in body["data"].items() if k != "links"}}


def _assert_no_secret(text: str) -> None:
    assert "failed" in text or "sent" in text  # the delivery's log lines were captured
    for secret in (SECRET, SECRET.removeprefix("whsec_"), "T0KEN-"):
        assert secret not in text


async def test_the_crm_receiver_of_the_docs_verifies_and_creates_the_task(monkeypatch) -> None:
    """docs/notifications.md's example receiver, as written, against a signed request."""
    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    [code] = re.findall(r"### Example: a CRM task.*?```python\n(.*?)```", doc, re.S)
    monkeypatch.setenv("KIZASHI_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CRM_TOKEN", "crm-token")
    signal = make_signal("ana@crm.test", name="Docs Example Co", priority="high")
    body = orjson.dumps(webhook_payload(signal, {"console": "http://console.test/signals/x"}))
    headers = WebhookSigner(SECRET).headers("delivery-1", body)
    why = Retraction(at=datetime.now(UTC), reason="product usage arrived late")
    retracted = signal.model_copy(update={"retracted": why})
    retraction = orjson.dumps(retraction_payload(retracted, corrects="delivery-1"))
    closing = WebhookSigner(SECRET).headers("delivery-1:correction", retraction)
    # A type a later Kizashi may add: the example answers 2xx, so it is not retried.
    later = orjson.dumps({"type": "kizashi.something.new", "version": 1, "data": {}})
    later_headers = WebhookSigner(SECRET).headers("delivery-2", later)
    async with recording_webhook_server() as crm:
        namespace: dict = {}
        exec(code.replace("https://crm.example.com/api/tasks", crm.url("/api/tasks")), namespace)
        transport = httpx.ASGITransport(app=namespace["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            accepted = await client.post("/kizashi", content=body, headers=headers)
            tampered = body.replace(b"Docs Example Co", b"Someone Else Co")
            refused = await client.post("/kizashi", content=tampered, headers=headers)
            closed = await client.post("/kizashi", content=retraction, headers=closing)
            unknown = await client.post("/kizashi", content=later, headers=later_headers)
        assert accepted.status_code == 200 and refused.status_code == 401
        assert closed.status_code == 200 and unknown.status_code == 200
        [task] = crm.requests_to("/api/tasks")
        [close] = crm.requests_to("/api/tasks/close")
    assert close.json == {
        "external_id": signal.signal_id,
        "note": "Retracted: product usage arrived late",
    }
    assert task["external_id"] == signal.signal_id and task["assignee_email"] == "ana@crm.test"
    assert task["subject"].startswith("Opportunity: Docs Example Co") and task["due_in_days"] == 1
    assert "Next step: Call the champion this week." in task["description"]
