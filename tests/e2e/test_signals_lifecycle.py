"""Signals through the whole stack: the lifecycle API (who and when, 404 / 409 / 422), snoozes
that re-open, signed alert links, the rules in force, a noisy stream giving one signal, the
daily cap's metric, and a backdated silence firing inactivity with no further event."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from kizashi.runtime.settings import ActionLinkSettings
from kizashi.runtime.signing import sign_action
from kizashi.tools.stack import credentials_file, read_env_file

pytestmark = pytest.mark.e2e


def _id() -> str:
    return uuid.uuid4().hex


def _facts(account: str, **more) -> dict:
    return {
        "type": "account_update",
        "account_id": account,
        "event_id": _id(),
        "name": f"Lifecycle {account}",
        "arr": 40000,
        "seats": 20,
        "owner_email": "owner@reps.example",
        **more,
    }


async def _signals(stack, account: str, rule: str | None = None) -> list[dict]:
    params = {"account_id": account} | ({"rule": rule} if rule else {})
    response = await stack.get("triggers", "/v1/signals", **params)
    assert response.status_code == 200, response.text
    return response.json()


async def _wait_signal(stack, account: str, rule: str) -> dict:
    async def probe():
        found = await _signals(stack, account, rule)
        return found[0] if found else None

    return await stack.wait_for(probe, within=60)


async def _detractor_signal(stack) -> dict:
    account = f"life-{_id()[:8]}"
    survey = {"type": "survey_response", "account_id": account, "event_id": _id()}
    await stack.post_events([_facts(account), {**survey, "survey_id": "pulse", "nps": 2}])
    return await _wait_signal(stack, account, "detractor")


async def _post(stack, signal_id: str, action: str, **body) -> httpx.Response:
    url = f"{stack.urls['triggers']}/v1/signals/{signal_id}/{action}"
    async with stack.api() as client:
        return await client.post(url, json=body or None)


async def _get_signal(stack, signal_id: str) -> dict:
    response = await stack.get("triggers", f"/v1/signals/{signal_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _near(text: str, moment: datetime, slack: timedelta = timedelta(minutes=2)) -> bool:
    return abs(datetime.fromisoformat(text) - moment) < slack


async def test_ack_snooze_resolve_record_who_and_when(stack) -> None:
    signal = await _detractor_signal(stack)
    sid = signal["signal_id"]
    assert signal["status"] == "open" and signal["reasons"] == [
        f"NPS 2 on {datetime.now(UTC):%Y-%m-%d}"
    ]

    acked = await _post(stack, sid, "ack", by="alice@reps.example")
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["status_changed_by"] == "alice@reps.example"
    again = await _post(stack, sid, "ack")
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]

    snoozed = await _post(stack, sid, "snooze", hours=2, by="bob@reps.example")
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["status"] == "snoozed"
    assert _near(snoozed.json()["snoozed_until"], datetime.now(UTC) + timedelta(hours=2))

    resolved = await _post(stack, sid, "resolve")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["snoozed_until"] is None
    assert (await _post(stack, sid, "snooze", hours=1)).status_code == 409
    assert (await _post(stack, sid, "resolve")).status_code == 409

    view = await _get_signal(stack, sid)
    assert view["status"] == "resolved" and view["status_changed_by"] == "api"
    steps = [(a["action"], a["actor"]) for a in view["actions"]]
    assert steps == [
        ("acknowledged", "alice@reps.example"),
        ("snoozed", "bob@reps.example"),
        ("resolved", "api"),
    ]
    assert all(_near(a["at"], datetime.now(UTC)) for a in view["actions"])
    assert _near(view["actions"][1]["detail"]["until"], datetime.now(UTC) + timedelta(hours=2))
    listed = await stack.get(
        "triggers", "/v1/signals", status="resolved", account_id=view["account_id"]
    )
    assert [s["signal_id"] for s in listed.json()] == [sid]


async def test_bad_requests_get_a_precise_4xx(stack) -> None:
    signal = await _detractor_signal(stack)
    sid = signal["signal_id"]
    for action in ("ack", "snooze", "resolve"):
        missing = await _post(stack, "no-such-signal", action, hours=1)
        assert missing.status_code == 404, missing.text
    assert (await stack.get("triggers", "/v1/signals/no-such-signal")).status_code == 404
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for body in (
        {},
        {"hours": 2, "until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        {"until": past},
        {"hours": 0},
        {"hours": "soon"},
        {"until": "2030-01-01T00:00:00"},  # no offset: ambiguous
        {"hours": 2, "by": "nul\x00in-name"},  # PostgreSQL text cannot hold NUL
    ):
        response = await _post(stack, sid, "snooze", **body)
        assert response.status_code == 422, (body, response.text)
    assert (await stack.get("triggers", "/v1/signals", status="closed")).status_code == 422
    async with httpx.AsyncClient() as anonymous:
        url = f"{stack.urls['triggers']}/v1/signals/{sid}/ack"
        assert (await anonymous.post(url)).status_code == 401
    assert (await _get_signal(stack, sid))["status"] == "open"


async def test_a_snoozed_signal_reopens_when_its_time_is_up(stack) -> None:
    signal = await _detractor_signal(stack)
    sid = signal["signal_id"]
    until = datetime.now(UTC) + timedelta(seconds=2)
    response = await _post(stack, sid, "snooze", until=until.isoformat(), by="carol")
    assert response.status_code == 200 and response.json()["status"] == "snoozed"

    async def reopened():
        view = await _get_signal(stack, sid)
        return view if view["status"] == "open" else None

    view = await stack.wait_for(reopened, within=60)
    assert view["snoozed_until"] is None
    assert view["status_changed_by"] == "kizashi:snooze-ended"
    assert [(a["action"], a["actor"]) for a in view["actions"]] == [
        ("snoozed", "carol"),
        ("reopened", "kizashi:snooze-ended"),
    ]
    assert datetime.fromisoformat(view["actions"][1]["at"]) >= until


async def test_signed_links_confirm_on_get_and_act_on_post(stack) -> None:
    signal = await _detractor_signal(stack)
    sid = signal["signal_id"]
    # `kizashi up` generates the action secret once and keeps it with its credentials.
    stored = read_env_file(credentials_file(stack.data_dir)).get("KIZASHI_ACTION_SECRET")
    secret = stored or ActionLinkSettings(api_token=stack.api_token).signing_secret()
    expires = datetime.now(UTC) + timedelta(days=7)
    base = f"{stack.urls['triggers']}/v1/actions"
    async with httpx.AsyncClient(timeout=15) as browser:
        link = f"{base}/{sign_action(sid, 'snooze', expires, secret)}"
        page = await browser.get(link)
        assert (
            page.status_code == 200 and "Snooze for 24 hours" in page.text and "<form" in page.text
        )
        assert (await _get_signal(stack, sid))["status"] == "open"  # a GET changes nothing

        done = await browser.post(link)
        assert done.status_code == 200 and "snoozed until" in done.text
        view = await _get_signal(stack, sid)
        assert view["status"] == "snoozed" and view["status_changed_by"] == "alert-link"
        assert _near(view["snoozed_until"], datetime.now(UTC) + timedelta(hours=24))

        ack = await browser.post(f"{base}/{sign_action(sid, 'ack', expires, secret)}")
        assert ack.status_code == 200 and "acknowledged" in ack.text
        assert (
            await browser.post(f"{base}/{sign_action(sid, 'ack', expires, secret)}")
        ).status_code == 409

        expired = sign_action(sid, "ack", datetime.now(UTC) - timedelta(seconds=1), secret)
        assert (await browser.get(f"{base}/{expired}")).status_code == 410
        forged = sign_action(sid, "ack", expires, "not-the-secret")
        assert (await browser.post(f"{base}/{forged}")).status_code == 400
        other = sign_action("no-such-signal", "ack", expires, secret)
        assert (await browser.post(f"{base}/{other}")).status_code == 404
    view = await _get_signal(stack, sid)
    assert [(a["action"], a["actor"]) for a in view["actions"]] == [
        ("snoozed", "alert-link"),
        ("acknowledged", "alert-link"),
    ]


async def test_the_rules_in_force_are_listed(stack) -> None:
    response = await stack.get("triggers", "/v1/rules")
    assert response.status_code == 200
    rules = {rule["name"]: rule for rule in response.json()}
    assert list(rules) == [
        "expansion_ready",
        "upsell_intent",
        "pricing_interest",
        "cross_sell_click",
        "seat_pressure",
        "renewal_window",
        "new_decision_maker",
        "competitor_trouble",
        "customer_pain",
        "relocation_or_policy_change",
        "renewal_timing",
        "support_surge",
        "fiscal_year_end",
        "usage_drop",
        "inactivity",
        "detractor",
        "health_drop",
        "renewal_at_risk",
        "key_person_left",
    ]
    pricing = rules["pricing_interest"]
    assert pricing["kind"] == "opportunity" and pricing["cooldown"] == "14d"
    assert pricing["parameters"] == {"threshold": 3.0, "rearm_at": 1.0}
    assert pricing["condition"] == "high_value_visits_7d >= 3"
    assert rules["inactivity"]["auto_resolve_after"] == "3d"
    left = rules["key_person_left"]
    assert left["kind"] == "churn_risk" and left["parameters"]["max_age"] == "30d"
    assert all(rule["suggested_play"] for rule in rules.values())
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(f"{stack.urls['triggers']}/v1/rules")).status_code == 401


async def _applied(stack, account: str, kind: str, count: int) -> None:
    async def probe():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        return response.status_code == 200 and response.json()["event_counts"].get(kind, 0) == count

    await stack.wait_for(probe, within=60)


async def test_a_noisy_stream_gives_one_signal_per_episode(stack) -> None:
    account = f"noisy-{_id()[:8]}"
    now = datetime.now(UTC)
    await stack.post_events([_facts(account)])
    sent: list[dict] = []
    # Twelve bursts of 0-2 pricing visits (each its own scores.changed), some sent twice.
    for burst in range(12):
        visits = [
            {
                "type": "web_visit",
                "account_id": account,
                "event_id": _id(),
                "url": "https://vendor.example/pricing",
                "occurred_at": (now - timedelta(days=6, hours=-burst * 10)).isoformat(),
            }
            for _ in range(burst % 3)
        ]
        sent += visits
        await stack.post_events([*visits, *sent[-1:]] or [_facts(account, plan="team")])
        await _applied(stack, account, "web_visit", len(sent))
    assert len(sent) == 12
    await stack.post_events(sent)  # a replay of the whole stream
    signals = await _signals(stack, account)
    assert [s["rule"] for s in signals] == ["pricing_interest"]
    assert signals[0]["reasons"] == ["3 pricing visits in the last 7 days"]


def _suppressed_total(metrics: str) -> float:
    pattern = r"^kizashi_triggers_signals_suppressed_total\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(m) for m in re.findall(pattern, metrics, flags=re.M))


async def test_the_daily_cap_holds_back_and_counts_the_rest(stack) -> None:
    async def metric() -> float:
        async with httpx.AsyncClient() as client:
            return _suppressed_total((await client.get(f"{stack.urls['triggers']}/metrics")).text)

    before = await metric()
    account = f"capped-{_id()[:8]}"
    now = datetime.now(UTC)
    base = {"account_id": account}
    burst = [
        _facts(account, seats=2),
        *[
            {
                **base,
                "type": "product_usage",
                "event_id": _id(),
                "user_id": f"u{i}",
                "action": "login",
            }
            for i in range(2)
        ],
        {
            **base,
            "type": "survey_response",
            "event_id": _id(),
            "survey_id": "s",
            "nps": 2,
            "upsell_intent": 9,
        },
        *[
            {**base, "type": "web_visit", "event_id": _id(), "url": "https://v.example/pricing"}
            for _ in range(3)
        ],
        *[
            {
                **base,
                "type": "email_engagement",
                "event_id": _id(),
                "action": "click",
                "campaign_id": "c",
                "tags": ["cross_sell"],
                "occurred_at": (now - timedelta(minutes=1)).isoformat(),
            }
            for _ in range(2)
        ],
    ]
    await stack.post_events(burst)
    await _applied(stack, account, "email_engagement", 2)

    async def capped():
        found = await _signals(stack, account)
        return found if len(found) >= 3 and await metric() >= before + 2 else None

    signals = await stack.wait_for(capped, within=60)
    assert len(signals) == 3  # five rules are ready; the cap of 3 a day holds back two
    assert {s["rule"] for s in signals} < {
        "seat_pressure",
        "detractor",
        "upsell_intent",
        "pricing_interest",
        "cross_sell_click",
        "expansion_ready",
    }


async def test_backdated_silence_fires_inactivity_without_another_event(stack) -> None:
    account = f"backdated-{_id()[:8]}"
    last = datetime.now(UTC) - timedelta(days=20)
    usage = {
        "type": "product_usage",
        "account_id": account,
        "event_id": _id(),
        "user_id": "u1",
        "action": "login",
        "occurred_at": last.isoformat(),
    }
    # The facts first: sent in one request, the two events travel on different topics, and
    # when scoring happened to read the usage first, inactivity fired at once on an account
    # with no name and no ARR (priority low), which is right for that order but not this test.
    await stack.post_events([_facts(account)])
    await _applied(stack, account, "account_update", 1)
    await stack.post_events([usage])
    signal = await _wait_signal(stack, account, "inactivity")
    assert signal["kind"] == "churn_risk" and signal["priority"] == "high"
    assert signal["reasons"] == [f"No product usage for 20 days (last on {last:%Y-%m-%d})"]
    assert signal["signal"]["account"]["name"] == f"Lifecycle {account}"
