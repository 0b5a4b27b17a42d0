"""Notification delivery through the real notifier worker, PostgreSQL and a Tansu broker.

Signals are published to the signal topics; the notifier routes them by its routing.yaml, records
the deliveries and sends them to the recording webhook server (answering 429/500/404/410 on
demand) and the aiosmtpd server. The last test kills the notifier mid-delivery."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signals_
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from kizashi.contracts.signals import Retraction
from kizashi.notifier.consumer import delivery_id_for
from kizashi.notifier.digest import digest_id_for
from kizashi.tools.embedded import EmbeddedBroker, free_port
from kizashi.tools.migrate import upgrade
from tests.support import infra
from tests.support.notifier_stack import (
    DIGEST_INTERVAL_S,
    LEASE_S,
    MAX_ATTEMPTS,
    NotifierStack,
    make_signal,
    stack_env,
    start_of_fresh_window,
    write_config,
)
from tests.support.stack import start_stack
from tests.support.webhook_server import Reply

pytestmark = pytest.mark.e2e  # it starts a stack of its own


def _run(coroutine) -> None:
    # Its own loop in its own thread: the session's event loop must stay untouched.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def notifier(tmp_path_factory, database_url, webhook, smtp):
    workdir = tmp_path_factory.mktemp("notifier-stack")
    broker = EmbeddedBroker(workdir / "broker", free_port())
    broker.start()
    database = f"kizashi_notifier_{uuid.uuid4().hex[:8]}"
    _run(infra._create_database(database_url, database))
    url = infra._with_database(database_url, database)
    upgrade(url)
    config_dir = workdir / "config"
    base = webhook.url("").rstrip("/")
    write_config(config_dir, base)
    try:
        running = start_stack(
            workdir,
            database_url=url,
            bootstrap_servers=broker.bootstrap_servers,
            slack_webhook_url=None,
            smtp_url=smtp.url,
            extra_env=stack_env(config_dir),
        )
        try:
            yield NotifierStack(running, broker.bootstrap_servers, base)
        finally:
            code = running.stop()
            assert code == 0, f"kizashi up exited with {code}:\n{running.log()}"
    finally:
        broker.stop()
        # Best effort: the session's server goes away with the session anyway.
        with contextlib.suppress(Exception):
            _run(infra._drop_database(database_url, database))


def _ids(requests) -> list[str]:
    return [r.headers.get("x-kizashi-delivery-id") for r in requests]


async def test_signals_route_by_owner_map_regex_and_default(notifier, webhook):
    to_ana = make_signal("Ana@Reps.test", name="Ana's account")
    to_vip = make_signal("vip-42@regex.test", name="VIP Corp")
    not_vip = make_signal("vip-x@regex.test", name="Lookalike Ltd")
    await notifier.publish(to_ana, to_vip, not_vip)
    for signal in (to_ana, to_vip, not_vip):
        await notifier.wait_delivered(signal)

    [ana] = webhook.requests_to("/n/ana")
    assert ana["text"].startswith("Opportunity: Ana's account")
    assert _ids([ana]) == [delivery_id_for(to_ana.signal_id, "ops")]
    [vip] = webhook.requests_to("/n/vip")
    assert "VIP Corp" in vip["text"]
    # "vip-x" does not fully match the regex: the default route's webhook gets it.
    ops = [r for r in webhook.requests_to("/n/ops") if "Lookalike Ltd" in r["text"]]
    assert _ids(ops) == [delivery_id_for(not_vip.signal_id, "ops")]
    assert [d["receiver"] for d in await notifier.deliveries(signal_id=to_vip.signal_id)] == ["vip"]


async def test_429_is_retried_after_retry_after(notifier, webhook):
    webhook.respond_with("/n/t429", [Reply(429, headers={"Retry-After": "2"})])
    signal = make_signal("t429@reps.test")
    await notifier.publish(signal)
    [delivery] = await notifier.wait_delivered(signal)

    first, second = webhook.requests_to("/n/t429")
    assert second.at - first.at >= 1.9  # not before the receiver said
    assert _ids([first, second]) == [delivery["delivery_id"]] * 2
    log = delivery["attempt_log"]
    assert [(a["outcome"], a["status_code"]) for a in log] == [("retry", 429), ("sent", 200)]
    assert "rate_limited" in log[0]["error"]


async def test_500_is_retried_then_sent(notifier, webhook):
    webhook.respond_with("/n/t500", [500])
    signal = make_signal("t500@reps.test")
    await notifier.publish(signal)
    [delivery] = await notifier.wait_delivered(signal)
    assert len(webhook.requests_to("/n/t500")) == 2
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["retry", "sent"]
    assert delivery["attempt_log"][0]["error"] == "HTTP 500: internal_error"
    assert delivery["last_error"] is None and delivery["sent_at"] is not None


@pytest.mark.parametrize(("status", "reason"), [(404, "no_service"), (410, "channel_is_archived")])
async def test_permanent_4xx_fails_at_once_is_dead_lettered_and_counted(
    notifier, webhook, status, reason
):
    path = f"/n/t{status}"
    webhook.respond_with(path, [status])
    failed_before = await notifier.metric(
        "kizashi_notifier_deliveries_failed_total", channel="slack"
    )
    signal = make_signal(f"t{status}@reps.test")
    await notifier.publish(signal)
    [delivery] = await notifier.wait_delivered(signal, status="failed")

    assert delivery["last_error"] == f"HTTP {status}: {reason}"
    assert delivery["attempts"] == 1 and len(delivery["attempt_log"]) == 1
    letter = await notifier.wait_dead_letter(delivery["delivery_id"])
    assert reason in letter["reason"] and letter["error_type"] == "DeliveryFailed"
    assert signal.signal_id in letter["value"]
    failed_after = await notifier.metric(
        "kizashi_notifier_deliveries_failed_total", channel="slack"
    )
    assert failed_after == failed_before + 1
    await asyncio.sleep(1.5)  # no retry comes later either
    assert len(webhook.requests_to(path)) == 1


async def test_attempts_are_capped_then_failed_and_dead_lettered(notifier, webhook):
    webhook.respond_with("/n/t503", [503] * MAX_ATTEMPTS)
    signal = make_signal("t503@reps.test")
    await notifier.publish(signal)
    [delivery] = await notifier.wait_delivered(signal, status="failed")
    assert len(webhook.requests_to("/n/t503")) == MAX_ATTEMPTS
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["retry", "retry", "failed"]
    assert delivery["last_error"] == "HTTP 503: service_unavailable"
    letter = await notifier.wait_dead_letter(delivery["delivery_id"])
    assert f"after {MAX_ATTEMPTS} attempt(s)" in letter["reason"]


async def test_deliveries_api_filters_and_retries_a_failed_delivery(notifier, webhook):
    webhook.respond_with("/n/retry", [404])
    signal = make_signal("retry@reps.test")
    await notifier.publish(signal)
    [failed] = await notifier.wait_delivered(signal, status="failed")
    delivery_id = failed["delivery_id"]

    listed = await notifier.deliveries(status="failed", channel="slack")
    assert delivery_id in {d["delivery_id"] for d in listed}
    assert all(d["status"] == "failed" and d["channel"] == "slack" for d in listed)
    assert await notifier.deliveries(signal_id=signal.signal_id, channel="email") == []
    bad = await notifier.stack.get("notifier", "/v1/deliveries", status="lost")
    assert bad.status_code == 422

    response = await notifier.post(f"/v1/deliveries/{delivery_id}/retry")
    assert response.status_code == 200, response.text
    [sent] = await notifier.wait_delivered(signal)
    assert len(webhook.requests_to("/n/retry")) == 2
    assert sent["attempt_log"][-1]["outcome"] == "sent"

    again = await notifier.post(f"/v1/deliveries/{delivery_id}/retry")
    assert again.status_code == 409 and "sent" in again.json()["detail"]
    missing = await notifier.post("/v1/deliveries/no-such-delivery/retry")
    assert missing.status_code == 404
    async with notifier.stack.api() as client:
        client.headers.pop("Authorization")
        unauthenticated = await client.get(f"{notifier.url}/v1/deliveries")
    assert unauthenticated.status_code == 401


async def test_receiver_test_endpoint_reports_the_result(notifier, webhook, smtp):
    ok = await notifier.post("/v1/receivers/vip/test")
    assert ok.status_code == 200 and ok.json()["ok"] is True, ok.text
    [*_, sample] = webhook.requests_to("/n/vip")
    assert "Test account (Kizashi)" in sample["text"]

    webhook.respond_with("/n/broken", [410])
    broken = (await notifier.post("/v1/receivers/broken/test")).json()
    assert broken == {
        "receiver": "broken",
        "ok": False,
        "outcome": "failed",
        "reason": "HTTP 410: channel_is_archived",
        "status_code": 410,
    }
    assert (await notifier.post("/v1/receivers/nobody/test")).status_code == 404


async def test_routes_show_the_tree_with_urls_redacted(notifier):
    response = await notifier.stack.get("notifier", "/v1/routes")
    assert response.status_code == 200
    tree = response.json()
    assert "/n/" not in response.text  # webhook paths are the secret part of a Slack URL
    assert tree["source"].endswith("routing.yaml")
    assert [r["name"] for r in tree["routes"]] == [
        "vip accounts",
        "owner digests",
        "churn by email",
    ]
    assert tree["routes"][1]["digest"] == {"interval": f"{DIGEST_INTERVAL_S}s"}
    receivers = {r["name"]: r for r in tree["receivers"]}
    assert receivers["vip"]["webhook"].startswith("http://127.0.0.1:")
    assert set(receivers["ops"]["by_owner"]) >= {"ana@reps.test", "slow@reps.test"}
    assert tree["default"]["receivers"] == ["ops"]


async def test_email_uses_the_subject_template_from_the_config_folder(notifier, smtp):
    signal = make_signal("mail@reps.test", kind="churn_risk", name="Globex <Intl>")
    await notifier.publish(signal)
    [delivery] = await notifier.wait_delivered(signal)
    assert delivery["channel"] == "email"
    [message] = [m for m in smtp.messages if m["X-Kizashi-Delivery-Id"] == delivery["delivery_id"]]
    assert str(message["Subject"]) == "[CS team] Churn risk: Globex <Intl> — detractor, NPS 3"
    assert str(message["To"]) == "mail@reps.test"
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Globex &lt;Intl&gt;" in html  # the packaged body, still escaped


async def test_a_replayed_signal_is_not_sent_again(notifier, webhook):
    signal = make_signal("replay@reps.test")
    await notifier.publish(signal)
    await notifier.wait_delivered(signal)
    # The replay and then a marker on the same partition (same account): once the marker is
    # delivered, the replay has been consumed.
    marker = make_signal("replay@reps.test", account_id=signal.account_id)
    await notifier.publish(signal, marker)
    await notifier.wait_delivered(marker)
    assert _ids(webhook.requests_to("/n/replay")) == [
        delivery_id_for(signal.signal_id, "ops"),
        delivery_id_for(marker.signal_id, "ops"),
    ]
    assert len(await notifier.deliveries(signal_id=signal.signal_id)) == 1


async def test_a_digest_route_sends_one_message_per_owner_per_interval(notifier, webhook, smtp):
    webhook.respond_with("/n/digest-fail", [404])
    await start_of_fresh_window(DIGEST_INTERVAL_S, room=6)
    mine = [make_signal("digest@reps.test", name=f"Digest Co {i}") for i in range(3)]
    theirs = [make_signal("digest-fail@reps.test", name=f"Failing Co {i}") for i in range(2)]
    await notifier.publish(*mine, *theirs)

    sent = [await notifier.wait_delivered(s, within=DIGEST_INTERVAL_S + 30) for s in mine]
    failed = [await notifier.wait_delivered(s, "failed", channel="slack") for s in theirs]

    # One Slack message for the three signals of digest@, carrying each of them.
    [message] = webhook.requests_to("/n/digest-ok")
    assert message["text"] == "Kizashi digest for digest@reps.test: 3 signals"
    body = str(message.json)
    assert all(f"Digest Co {i}" in body for i in range(3))
    slack_rows = [r for rows in sent for r in rows if r["channel"] == "slack"]
    [digest_key] = {r["digest_key"] for r in slack_rows}
    assert _ids([message]) == [digest_id_for(digest_key, [r["delivery_id"] for r in slack_rows])]
    assert len({r["sent_at"] for r in slack_rows}) == 1  # recorded together

    # One email to the owner with the same three.
    emails = [m for m in smtp.messages if str(m["To"]) == "digest@reps.test"]
    [email] = emails
    assert str(email["Subject"]) == "Kizashi digest for digest@reps.test: 3 signals"
    text = email.get_body(preferencelist=("plain",)).get_content()
    assert all(f"Digest Co {i}" in text for i in range(3))

    # The other owner's digest failed once, for both its signals together; email still went.
    assert len(webhook.requests_to("/n/digest-fail")) == 1
    failed_slack = [r for rows in failed for r in rows]
    assert {r["last_error"] for r in failed_slack} == {"HTTP 404: no_service"}
    for signal in theirs:
        await notifier.wait_delivered(signal, channel="email")

    # Retrying one of them retries the whole digest: one message with both signals.
    retried = await notifier.post(f"/v1/deliveries/{failed_slack[0]['delivery_id']}/retry")
    assert retried.status_code == 200 and retried.json()["deliveries"] == 2
    for signal in theirs:
        await notifier.wait_delivered(signal)
    [_, again] = webhook.requests_to("/n/digest-fail")
    assert all(f"Failing Co {i}" in str(again.json) for i in range(2))
    assert await notifier.metric("kizashi_notifier_digests_total", channel="slack", outcome="sent")


async def test_killing_the_notifier_mid_delivery_neither_loses_nor_doubles(notifier, webhook):
    """SIGKILL while the receiver is still answering: after the supervisor's restart and the
    lease, every delivery is answered exactly once; signals sent while it was down arrive too."""
    webhook.respond_with("/n/slow", [Reply(200, delay=6)] * 3)
    before = [make_signal("slow@reps.test", name=f"Slow Co {i}") for i in range(3)]
    await notifier.publish(*before)

    async def _notifier_state() -> dict | None:
        try:
            return notifier.stack.state()["services"]["notifier"]
        except ValueError:  # the supervisor is rewriting the file right now
            return None

    async def in_flight() -> bool:
        return bool(webhook.requests_to("/n/slow"))

    await notifier.stack.wait_for(in_flight, within=30, interval=0.05)
    first = await notifier.stack.wait_for(_notifier_state)
    os.kill(first["pid"], signals_.SIGKILL)  # during the receiver's 6 s delay

    during = [make_signal("slow@reps.test", name=f"Late Co {i}") for i in range(2)]
    await notifier.publish(*during)

    async def restarted() -> bool:
        state = await _notifier_state()
        if not state or state["pid"] == first["pid"] or state["restarts"] <= first["restarts"]:
            return False
        try:
            return (await notifier.stack.get("notifier", "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await notifier.stack.wait_for(restarted, within=30)
    for signal in (*before, *during):
        await notifier.wait_delivered(signal, within=60 + LEASE_S)

    answered = _ids(webhook.answered_to("/n/slow"))
    expected = {delivery_id_for(s.signal_id, "ops") for s in (*before, *during)}
    assert sorted(answered) == sorted(expected), answered
    # What the killed process had in flight was received but never answered, and was sent again.
    unanswered = _ids(r for r in webhook.unanswered if r.path == "/n/slow")
    assert unanswered and set(unanswered) <= expected
    for signal in before:
        [row] = await notifier.deliveries(signal_id=signal.signal_id)
        if row["delivery_id"] in unanswered:
            # The first attempt's result was never recorded: only the resend's is.
            assert row["attempts"] == 2 and [a["attempt"] for a in row["attempt_log"]] == [2]


async def test_a_retraction_replayed_sends_one_correction_and_cancels_what_was_not_sent(
    notifier, webhook
):
    sent = make_signal("correct@reps.test", kind="churn_risk", rule="inactivity", name="Fix <Co>")
    await notifier.publish(sent)
    await notifier.wait_delivered(sent)
    # A signal still waiting for its owner's digest when it is retracted (early in a window,
    # so the digest cannot go out before the retraction is consumed).
    await start_of_fresh_window(DIGEST_INTERVAL_S, room=8)
    waiting = make_signal("digest@reps.test", kind="churn_risk", rule="inactivity")
    await notifier.publish(waiting)
    await notifier.wait_delivered(waiting, "pending", within=10)

    why = Retraction(at=datetime.now(UTC), reason="product usage on 2026-12-02 arrived late")
    retracted = [s.model_copy(update={"retracted": why}) for s in (sent, waiting)]
    # Each retraction twice (a replay), then a marker on the first one's partition.
    marker = make_signal("correct@reps.test", account_id=sent.account_id)
    await notifier.publish(*retracted, *retracted, marker)
    await notifier.wait_delivered(marker)

    correction_id = f"{delivery_id_for(sent.signal_id, 'ops')}:correction"

    async def corrected():
        rows = await notifier.deliveries(signal_id=sent.signal_id)
        return rows if {r["status"] for r in rows} == {"sent"} and len(rows) == 2 else None

    rows = await notifier.stack.wait_for(corrected, within=30)
    assert sorted(r["delivery_id"] for r in rows) == sorted(
        [delivery_id_for(sent.signal_id, "ops"), correction_id]
    )
    to_owner = webhook.requests_to("/n/correct")
    corrections = [r for r in to_owner if r.headers.get("x-kizashi-delivery-id") == correction_id]
    assert len(corrections) == 1
    assert corrections[0]["text"].startswith("*Correction:* inactivity for *Fix &lt;Co&gt;* on ")

    cancelled = await notifier.wait_delivered(waiting, "cancelled", within=10)
    assert len(cancelled) == 2  # its digest's Slack and email: never sent, nothing to correct
    assert {r["delivery_id"] for r in cancelled} == {
        delivery_id_for(waiting.signal_id, "digests"),
        delivery_id_for(waiting.signal_id, "mail"),
    }
