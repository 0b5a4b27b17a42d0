"""Corrections through the whole stack (issue #20), on the real broker, PostgreSQL, the local
Slack receiver and SMTP server: a backdated silence fires `inactivity` and its alert is sent;
a delayed batch of usage from inside that silence then arrives, within its source's
watermark; the signal becomes `retracted` and its owner gets exactly one "Correction: …" per
channel, the email a reply to the alert."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.console import add_person, sign_in

pytestmark = pytest.mark.e2e


def _id() -> str:
    return uuid.uuid4().hex


def _usage(account: str, at: datetime) -> dict:
    return {
        "type": "product_usage",
        "account_id": account,
        "event_id": _id(),
        "user_id": "u1",
        "action": "login",
        "occurred_at": at.isoformat(),
    }


def _retracted_total(metrics: str) -> float:
    pattern = r'^kizashi_triggers_signals_retracted_total\{rule="inactivity"\} ([0-9.e+]+)$'
    return sum(float(m) for m in re.findall(pattern, metrics, flags=re.M))


async def test_a_delayed_usage_batch_retracts_a_sent_inactivity_with_one_correction(
    stack, webhook, smtp, browser
) -> None:
    async def retracted_metric() -> float:
        async with httpx.AsyncClient() as client:
            return _retracted_total((await client.get(f"{stack.urls['triggers']}/metrics")).text)

    metric_before = await retracted_metric()
    rep = await add_person(stack, "rep")
    account = f"late-{_id()[:8]}"
    name = f"Late & <Co> {account}"  # escaped in every channel
    now = datetime.now(UTC)
    facts = {
        "type": "account_update",
        "account_id": account,
        "event_id": _id(),
        "name": name,
        "arr": 40000,
        "seats": 20,
        "owner_email": rep,
    }
    await stack.post_events([facts])

    async def facts_applied():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        return response.status_code == 200

    await stack.wait_for(facts_applied, within=60)
    # Usage 20 days ago, received now: beyond any watermark, so it only scores; the silence
    # it leaves fires inactivity at once.
    await stack.post_events([_usage(account, now - timedelta(days=20))])

    async def fired():
        found = (await stack.get("triggers", "/v1/signals", account_id=account)).json()
        return found[0] if found else None

    signal = await stack.wait_for(fired, within=60)
    sid = signal["signal_id"]
    assert signal["rule"] == "inactivity" and signal["status"] == "open"

    async def alert_sent():
        rows = (await stack.get("notifier", "/v1/deliveries", signal_id=sid)).json()
        statuses = {(d["channel"], d["status"]) for d in rows}
        return rows if statuses == {("slack", "sent"), ("email", "sent")} else None

    alerts = await stack.wait_for(alert_sent, within=60)
    alert_email_id = {d["channel"]: d["delivery_id"] for d in alerts}["email"]

    # The usage the silence was wrong about, a day before the signal fired, arriving late.
    delayed = [_usage(account, now - timedelta(days=1, minutes=m)) for m in range(3)]
    await stack.post_events(delayed)

    async def retracted():
        view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
        return view if view["status"] == "retracted" else None

    view = await stack.wait_for(retracted, within=60)
    day = f"{now - timedelta(days=1):%Y-%m-%d}"
    why = f"product usage on {day} arrived late (3 events)"
    assert view["status_changed_by"] == "kizashi:correction"
    assert view["signal"]["retracted"]["reason"] == why
    assert [(a["action"], a["actor"], a["detail"]) for a in view["actions"]] == [
        ("retracted", "kizashi:correction", {"reason": why})
    ]
    listed = (
        await stack.get("triggers", "/v1/signals", status="retracted", account_id=account)
    ).json()
    assert [s["signal_id"] for s in listed] == [sid]
    # Nothing to do on a signal that did not hold.
    async with stack.api() as client:
        ack = await client.post(f"{stack.urls['triggers']}/v1/signals/{sid}/ack")
    assert ack.status_code == 409 and "retracted" in ack.json()["detail"]

    async def corrections_sent():
        rows = (await stack.get("notifier", "/v1/deliveries", signal_id=sid)).json()
        done = [d for d in rows if d["delivery_id"].endswith(":correction")]
        return done if {d["status"] for d in done} == {"sent"} and len(done) == 2 else None

    await stack.wait_for(corrections_sent, within=60)
    escaped = f"Late &amp; &lt;Co&gt; {account}"
    expected = f"*Correction:* inactivity for *{escaped}* on {now:%Y-%m-%d} did not hold: {why}"
    slack = [r.json for r in webhook.requests_to("/slack") if escaped in str(r.json)]
    corrections = [m for m in slack if m["text"].startswith("*Correction:*")]
    assert [m["text"] for m in corrections] == [expected]
    assert len(slack) == 2  # the alert and its correction

    mails = [m for m in smtp.messages if account in str(m["Subject"])]
    replies = [m for m in mails if str(m["Subject"]).startswith("Correction:")]
    assert len(replies) == 1 and len(mails) == 2
    reply = replies[0]
    assert str(reply["Subject"]) == (
        f"Correction: inactivity for {name} on {now:%Y-%m-%d} did not hold: {why}"
    )
    original = next(m for m in mails if m is not reply)
    assert str(original["Message-ID"]) == f"<{alert_email_id}@kizashi>"
    assert str(reply["In-Reply-To"]) == str(original["Message-ID"])
    assert str(reply["References"]) == str(original["Message-ID"])
    html = reply.get_body(preferencelist=("html",)).get_content()
    assert f"Late &amp; &lt;Co&gt; {account}" in html and "<Co>" not in html

    async def counted():
        return await retracted_metric() == metric_before + 1

    await stack.wait_for(counted, within=30)

    # The console lists it under `retracted`, says why, and offers no action on it.
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await sign_in(page, stack, rep)
        console = stack.urls["console"]
        await page.goto(f"{console}/signals?status=retracted&owner=mine")
        assert name in await page.inner_text("main")
        await page.goto(f"{console}/signals/{sid}")
        text = await page.inner_text("main")
        assert f"Retracted: did not hold: {why}" in text and "retracted" in text
        assert await page.locator("main form[action$='/ack']").count() == 0
        assert await page.locator("main form[action$='/resolve']").count() == 0
    finally:
        await context.close()


async def test_late_usage_retracts_a_usage_drop_on_the_counters_it_kept(stack, webhook) -> None:
    account = f"drop-{_id()[:8]}"
    now = datetime.now(UTC)
    facts = {
        "type": "account_update",
        "account_id": account,
        "event_id": _id(),
        "name": f"Drop {account}",
        "owner_email": "owner@reps.example",
    }
    await stack.post_events([facts])

    async def facts_applied():
        return (await stack.get("scoring", f"/v1/accounts/{account}")).status_code == 200

    await stack.wait_for(facts_applied, within=60)
    # Thirty uses 20 to 27 days ago (beyond the watermark): the 7-day rate is a small share of
    # the 28-day one, so usage_drop fires (and, 20 days on, inactivity).
    history = [_usage(account, now - timedelta(days=20, hours=5 * i)) for i in range(30)]
    await stack.post_events(history)

    async def both_fired():
        found = (await stack.get("triggers", "/v1/signals", account_id=account)).json()
        rules = {s["rule"]: s for s in found}
        return rules if {"usage_drop", "inactivity"} <= rules.keys() else None

    fired = await stack.wait_for(both_fired, within=60)

    async def alerts_sent():
        for signal in fired.values():
            rows = (
                await stack.get("notifier", "/v1/deliveries", signal_id=signal["signal_id"])
            ).json()
            if {d["status"] for d in rows} != {"sent"}:
                return None
        return True

    await stack.wait_for(alerts_sent, within=60)
    # Twenty uses yesterday, arriving late: there was no drop, and no silence.
    await stack.post_events(
        [_usage(account, now - timedelta(days=1, minutes=m)) for m in range(20)]
    )

    async def both_retracted():
        views = [
            (await stack.get("triggers", f"/v1/signals/{s['signal_id']}")).json()
            for s in fired.values()
        ]
        return views if all(v["status"] == "retracted" for v in views) else None

    views = {v["rule"]: v for v in await stack.wait_for(both_retracted, within=60)}
    day = f"{now - timedelta(days=1):%Y-%m-%d}"
    drop = views["usage_drop"]["signal"]["retracted"]["reason"]
    assert drop.startswith(f"product usage up to {day} arrived late (20 events): usage in the 7 ")
    assert drop.endswith("of the 28-day baseline rate, not under 50%")

    async def corrected():
        mine = [
            r.json["text"]
            for r in webhook.requests_to("/slack")
            if account in str(r.json) and r.json["text"].startswith("*Correction:*")
        ]
        return mine if len(mine) == 2 else None

    texts = await stack.wait_for(corrected, within=60)
    assert sorted(t.split(" for ")[0] for t in texts) == [
        "*Correction:* inactivity",
        "*Correction:* usage drop",
    ]
