"""A rule's performance over scripted signals: triggers' API on a real uvicorn server and a
database of its own (the shared stack's rules fire on their own), checked against figures
worked out by hand: precision with its Wilson interval, feedback changed through the real
API (the history kept, the last answer counting), the median time to a first action (the
service's own steps not counted), the months, the gauges, and the 4xx answers. Outcomes,
scripted and recorded through the outcome API, make signals won, confirmed or averted within
the window and not outside it; every rule's figures at once agree with each rule's."""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from prometheus_client import REGISTRY

from kizashi.runtime.app import create_service_app
from kizashi.tools.embedded import free_port
from kizashi.triggers import feedback, outcomes, performance
from kizashi.triggers.api import router as signals_router
from kizashi.triggers.rules import load_rules_config
from kizashi.triggers.settings import TriggersSettings
from kizashi.triggers.state import TriggersState
from tests.support import infra

TOKEN = "performance-test-token"  # noqa: S105
RULE = "upsell_intent"
HOUR = timedelta(hours=1)
NOW = datetime.now(UTC)
# Signal → (days ago it fired, [(action, actor, hours after firing)], its feedback history as
# [(useful, reason, hours after firing)]). Feedback is logged as the service logs it.
REP = "rep@reps.example"
SCRIPT: dict[str, tuple[float, list, list]] = {
    "s0": (1, [("acknowledged", REP, 1)], [(True, None, 24)]),
    "s1": (2, [], [(True, None, 2)]),
    "s2": (3, [("snoozed", REP, 3)], [(True, None, 24)]),
    # The service's own auto-resolve is no one's action: the first one is the ack at 5 h.
    "s3": (
        4,
        [("resolved", "kizashi:auto-resolve", 0.1), ("acknowledged", REP, 5)],
        [(True, None, 24)],
    ),
    "s4": (5, [], [(True, None, 24)]),
    "s5": (6, [], [(True, None, 24)]),
    "s6": (7, [], [(True, None, 24)]),
    "s7": (8, [], [(True, None, 24)]),
    "s8": (9, [("acknowledged", REP, 7)], [(False, "not_actionable", 24)]),
    # Changed: useful at 20 h, not useful (a false alarm) at 24 h; the last counts.
    "s9": (10, [], [(True, None, 20), (False, "false_alarm", 24)]),
    "s10": (11, [], []),
    "s11": (12, [("reopened", "kizashi:snooze-ended", 1)], []),
    "s12": (13, [], []),
    # Outside 90 days.
    "o0": (200, [], [(True, None, 1)]),
    "o1": (201, [], [(False, None, 1)]),
}
DAY = timedelta(days=1)
# Outcomes: (account, kind, time, amount). Opportunities (upsell_intent) are won by an
# expansion in [fired, fired + 90 days); churn risks (usage_drop) confirmed by churn or a
# contraction, else averted by a renewal.
OUTCOMES = [
    ("acct-s0", "expansion", NOW - 0.5 * DAY, 5000.0),  # s0 won
    ("acct-s2", "contraction", NOW - 1 * DAY, 100.0),  # not an expansion: s2 not won
    ("acct-s3", "expansion", NOW - 5 * DAY, 900.0),  # before s3 fired (4 days ago): no
    ("acct-s4", "renewal", NOW - 1 * DAY, 9000.0),  # a renewal wins no opportunity
    ("acct-o0", "expansion", NOW - 90 * DAY, 100.0),  # 110 days after o0: outside the window
    ("acct-c0", "churn", NOW - 1 * DAY, 20_000.0),  # c0 confirmed
    ("acct-c1", "renewal", NOW - 1 * DAY, 20_000.0),  # c1 averted
    ("acct-c2", "renewal", NOW - 2 * DAY, 20_000.0),  # c2: renewed, then contracted:
    ("acct-c2", "contraction", NOW - 1 * DAY, 5_000.0),  # confirmed, not averted
    ("acct-c3", "expansion", NOW - 1 * DAY, 5_000.0),  # c3: neither
]
CHURN_RULE = "usage_drop"
CHURN_SIGNALS = {"c0": 3, "c1": 3, "c2": 3, "c3": 3}  # days ago

# First actions of the recent signals, in hours: 1, 2, 3, 5, 24, 24, 24, 24, 7, 20.
MEDIAN_S = statistics.median([1, 2, 3, 5, 24, 24, 24, 24, 7, 20]) * 3600


async def _script(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for sid, (days, actions, answers) in SCRIPT.items():
            fired = NOW - timedelta(days=days)
            await _signal(connection, sid, RULE, fired)
            for action, actor, hours in actions:
                await _action(connection, sid, action, actor, fired + hours * HOUR, None)
            for useful, reason, hours in answers:
                detail = {"useful": useful, "reason": reason, "channel": "api"}
                await _action(connection, sid, "feedback", REP, fired + hours * HOUR, detail)
                await connection.execute(
                    """UPDATE signals SET feedback_useful = $2, feedback_reason = $3,
                       feedback_by = $4, feedback_at = $5 WHERE signal_id = $1""",
                    sid,
                    useful,
                    reason,
                    REP,
                    fired + hours * HOUR,
                )
        for sid, days in CHURN_SIGNALS.items():
            await _signal(connection, sid, CHURN_RULE, NOW - days * DAY, kind="churn_risk")
        for number, (account, kind, at, amount) in enumerate(OUTCOMES):
            await connection.execute(
                """INSERT INTO outcomes (outcome_id, account_id, kind, occurred_at, amount,
                                         source) VALUES ($1, $2, $3, $4, $5, 'crm')""",
                f"o{number}",
                account,
                kind,
                at,
                amount,
            )
        # The account the API records an outcome for (triggers knows it from a change).
        await connection.execute(
            """INSERT INTO trigger_accounts (account_id, latest)
               VALUES ('acct-s1', $1::json)""",
            orjson.dumps({"account": {"account_id": "acct-s1", "owner_email": REP}}).decode(),
        )
        # Another rule's signal, with feedback: not counted for this one.
        await _signal(connection, "d0", "detractor", NOW - timedelta(days=1))
        await connection.execute(
            "UPDATE signals SET feedback_useful = true, feedback_by = $1 WHERE signal_id = 'd0'",
            REP,
        )
    finally:
        await connection.close()


async def _signal(
    connection, sid: str, rule: str, fired: datetime, kind: str = "opportunity"
) -> None:
    await connection.execute(
        """INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode, fired_at,
                                payload)
           VALUES ($1, $2, $6, $3, 'medium', '1', $4, $5::jsonb)""",
        sid,
        f"acct-{sid}",
        rule,
        fired,
        orjson.dumps({"signal_id": sid, "reasons": ["scripted"]}).decode(),
        kind,
    )


async def _action(connection, sid, action, actor, at, detail) -> None:
    await connection.execute(
        "INSERT INTO signal_actions (signal_id, action, actor, at, detail) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        sid,
        action,
        actor,
        at,
        None if detail is None else orjson.dumps(detail).decode(),
    )


@pytest.fixture(scope="module")
async def triggers(database_url: str):
    """Triggers' signals, feedback and performance API, served by uvicorn on its own scripted
    database (no broker: nothing here consumes)."""
    async with infra.scratch_database(database_url, "kizashi_performance") as url:
        await _script(url)
        settings = TriggersSettings(database_url=url, api_token=TOKEN)

        async def setup(runtime):
            return TriggersState(runtime=runtime, rules=load_rules_config(None))

        app = create_service_app(
            service="triggers",
            settings=settings,
            routers=[signals_router, feedback.router, performance.router, outcomes.router],
            setup=setup,
            broker=False,
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        ) as client:
            yield client, app, url
        server.should_exit = True
        await task


async def _performance(client, rule: str = RULE, **params) -> dict:
    response = await client.get(f"/v1/rules/{rule}/performance", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_changed_answer_keeps_its_history_and_the_last_counts(triggers) -> None:
    client, _, _ = triggers
    for body in ({"useful": True}, {"useful": False, "reason": "wrong_data", "by": "rita"}):
        answered = await client.post("/v1/signals/s8/feedback", json=body)
        assert answered.status_code == 200, answered.text
    view = (await client.get("/v1/signals/s8")).json()
    assert view["feedback"]["useful"] is False and view["feedback"]["reason"] == "wrong_data"
    assert view["feedback"]["by"] == "rita" and view["status"] == "open"
    history = [a for a in view["actions"] if a["action"] == "feedback"]
    assert [(a["actor"], a["detail"]) for a in history] == [
        (REP, {"useful": False, "reason": "not_actionable", "channel": "api"}),
        ("api", {"useful": True, "reason": None, "channel": "api"}),
        ("rita", {"useful": False, "reason": "wrong_data", "channel": "api"}),
    ]


async def test_the_figures_over_scripted_signals(triggers) -> None:
    client, app, url = triggers
    figures = await _performance(client, period="90d")
    assert figures["rule"] == RULE and figures["period"] == "90d"
    assert (figures["signals_fired"], figures["useful"], figures["not_useful"]) == (13, 8, 2)
    assert figures["no_feedback"] == 3 and figures["acted_on"] == 10
    value, low, high = (figures["precision"][k] for k in ("value", "low", "high"))
    assert value == 0.8 and (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert figures["precision"]["confidence"] == 0.95
    assert figures["median_time_to_first_action_s"] == pytest.approx(MEDIAN_S) == 13.5 * 3600
    assert (figures["won"], figures["confirmed"], figures["averted"]) == (1, 0, 0)
    assert figures["outcome_window_days"] == 90
    churn = await _performance(client, rule=CHURN_RULE, period="90d")
    assert (churn["signals_fired"], churn["won"], churn["confirmed"], churn["averted"]) == (
        4,
        0,
        2,
        1,
    )

    months: dict[str, list[int]] = {}
    for _sid, (days, _, answers) in SCRIPT.items():
        if days < 90:
            month = months.setdefault(f"{NOW - timedelta(days=days):%Y-%m}", [0, 0, 0])
            month[0] += 1
            if answers:
                month[1 if answers[-1][0] else 2] += 1
    assert [
        (m["month"], [m["signals_fired"], m["useful"], m["not_useful"]]) for m in figures["months"]
    ] == sorted(months.items())

    everything = await _performance(client, period="all")
    assert (everything["signals_fired"], everything["useful"], everything["not_useful"]) == (
        15,
        9,
        3,
    )
    assert everything["since"] is None and len(everything["months"]) >= 2
    recent = await _performance(client, period="1w")
    assert recent["signals_fired"] == 6  # s0..s5, fired 1 to 6 days ago (s6: 7 days, edge)
    silent = await _performance(client, rule="seat_pressure")
    assert silent["signals_fired"] == 0 and silent["months"] == []
    assert silent["precision"] == {"value": None, "low": None, "high": None, "confidence": 0.95}
    assert silent["median_time_to_first_action_s"] is None

    # Every rule at once: the same figures as each rule's.
    listed = await client.get("/v1/rules/performance", params={"period": "90d"})
    assert listed.status_code == 200, listed.text
    by_rule = {r["rule"]: r for r in listed.json()["rules"]}
    for name, one in ((RULE, figures), (CHURN_RULE, churn)):
        assert {k: v for k, v in by_rule[name].items() if k != "rule"} == {
            k: v
            for k, v in one.items()
            if k not in ("rule", "period", "since", "until", "months", "outcome_window_days")
        }
    assert by_rule["seat_pressure"]["signals_fired"] == 0

    await performance.refresh_gauges(app.state.service)

    def gauge(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"rule": RULE, **labels})

    assert gauge("kizashi_rule_fired_signals") == 13
    assert gauge("kizashi_rule_feedback_signals", useful="true") == 8
    assert gauge("kizashi_rule_feedback_signals", useful="false") == 2
    assert gauge("kizashi_rule_precision_ratio") == 0.8
    assert round(gauge("kizashi_rule_precision_lower_ratio"), 3) == 0.490
    assert round(gauge("kizashi_rule_precision_upper_ratio"), 3) == 0.943
    assert gauge("kizashi_rule_first_action_median_seconds") == pytest.approx(MEDIAN_S)
    assert gauge("kizashi_rule_outcome_signals", result="won") == 1
    assert gauge("kizashi_rule_outcome_signals", result="confirmed") == 0
    churn_gauge = {"rule": CHURN_RULE}
    assert (
        REGISTRY.get_sample_value(
            "kizashi_rule_outcome_signals", {**churn_gauge, "result": "confirmed"}
        )
        == 2
    )
    assert (
        REGISTRY.get_sample_value(
            "kizashi_rule_outcome_signals", {**churn_gauge, "result": "averted"}
        )
        == 1
    )
    quiet = {"rule": "seat_pressure"}
    assert REGISTRY.get_sample_value("kizashi_rule_fired_signals", quiet) == 0
    assert REGISTRY.get_sample_value("kizashi_rule_precision_ratio", quiet) is None


async def test_an_outcome_recorded_through_the_api_counts(triggers) -> None:
    """After the figures above: an expansion recorded for s1's account wins s1."""
    client, _, url = triggers
    body = {
        "kind": "expansion",
        "occurred_at": (NOW - 0.25 * DAY).isoformat(),
        "amount": 1200.5,
        "note": "two more teams <b>",
        "by": "rita",
    }
    recorded = await client.post("/v1/accounts/acct-s1/outcomes", json=body)
    assert recorded.status_code == 201, recorded.text
    view = recorded.json()
    assert (view["kind"], view["amount"], view["source"], view["recorded_by"]) == (
        "expansion",
        1200.5,
        "api",
        "rita",
    )
    assert view["note"] == "two more teams <b>"
    listed = (await client.get("/v1/accounts/acct-s1/outcomes")).json()
    assert [o["outcome_id"] for o in listed] == [view["outcome_id"]]
    figures = await _performance(client, period="90d")
    assert figures["won"] == 2


async def test_bad_outcomes_get_a_clear_4xx_and_record_nothing(triggers) -> None:
    client, _, url = triggers
    before = await _count(url, "SELECT count(*) FROM outcomes")
    at = (NOW - DAY).isoformat()
    for body in (
        {},
        {"kind": "upsell", "occurred_at": at},
        {"kind": "churn"},
        {"kind": "churn", "occurred_at": "2026-01-01T00:00:00"},  # no time zone
        {"kind": "churn", "occurred_at": (NOW + 3 * DAY).isoformat()},
        {"kind": "churn", "occurred_at": at, "amount": -1},
        {"kind": "churn", "occurred_at": at, "amount": "100"},
        {"kind": "churn", "occurred_at": at, "colour": "red"},
        {"kind": "churn", "occurred_at": at, "note": "nul\x00"},
        ["churn"],
    ):
        response = await client.post("/v1/accounts/acct-s1/outcomes", json=body)
        assert response.status_code == 422, (body, response.text)
    missing = await client.post(
        "/v1/accounts/no-such-account/outcomes", json={"kind": "churn", "occurred_at": at}
    )
    assert missing.status_code == 404 and "no-such-account" in missing.json()["detail"]
    async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
        response = await anonymous.post(
            "/v1/accounts/acct-s1/outcomes", json={"kind": "churn", "occurred_at": at}
        )
        assert response.status_code == 401
        assert (await anonymous.get("/v1/accounts/acct-s1/outcomes")).status_code == 401
        assert (await anonymous.get("/v1/rules/performance")).status_code == 401
    assert (await client.get("/v1/rules/performance", params={"period": "6m"})).status_code == 422
    assert await _count(url, "SELECT count(*) FROM outcomes") == before


async def _count(url: str, query: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def test_bad_requests_get_a_clear_4xx(triggers) -> None:
    client, _, url = triggers
    assert (await client.get("/v1/rules/no_such_rule/performance")).status_code == 404
    for period in ("", "90", "0d", "6m", "3661d", "all ", "x" * 17):
        response = await client.get(f"/v1/rules/{RULE}/performance", params={"period": period})
        assert response.status_code == 422, (period, response.text)
    async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
        assert (await anonymous.get(f"/v1/rules/{RULE}/performance")).status_code == 401
        assert (
            await anonymous.post("/v1/signals/s0/feedback", json={"useful": True})
        ).status_code == 401
    before = await _feedback_rows(url)
    for body in (
        {},
        {"useful": "yes"},
        {"useful": 1},
        {"useful": None},
        {"useful": False, "reason": "bored"},
        {"useful": True, "reason": "false_alarm"},
        {"useful": True, "usefull": True},
        {"useful": True, "by": "nul\x00"},
        [True],
    ):
        response = await client.post("/v1/signals/s10/feedback", json=body)
        assert response.status_code == 422, (body, response.text)
    not_json = await client.post(
        "/v1/signals/s10/feedback", content=b"useful=true", headers={"content-type": "text/plain"}
    )
    assert not_json.status_code == 422, not_json.text
    missing = await client.post("/v1/signals/no-such-signal/feedback", json={"useful": True})
    assert missing.status_code == 404 and "no-such-signal" in missing.json()["detail"]
    assert await _feedback_rows(url) == before


async def _feedback_rows(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(
            "SELECT count(*) FROM signal_actions WHERE action = 'feedback'"
        )
    finally:
        await connection.close()
