"""A rule's performance over scripted signals: triggers' API on a real uvicorn server and a
database of its own (the shared stack's rules fire on their own), checked against figures
worked out by hand: precision with its Wilson interval, feedback changed through the real
API (the history kept, the last answer counting), the median time to a first action (the
service's own steps not counted), the months, the gauges, and the 4xx answers. The console's
copy of the query gives the same rows."""

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

from kizashi.console.repository import rule_performance as console_rule_performance
from kizashi.runtime.app import create_service_app
from kizashi.tools.embedded import free_port
from kizashi.triggers import feedback, performance, repository
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
        # Another rule's signal, with feedback: not counted for this one.
        await _signal(connection, "d0", "detractor", NOW - timedelta(days=1))
        await connection.execute(
            "UPDATE signals SET feedback_useful = true, feedback_by = $1 WHERE signal_id = 'd0'",
            REP,
        )
    finally:
        await connection.close()


async def _signal(connection, sid: str, rule: str, fired: datetime) -> None:
    await connection.execute(
        """INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode, fired_at,
                                payload)
           VALUES ($1, $2, 'opportunity', $3, 'medium', '1', $4, $5::jsonb)""",
        sid,
        f"acct-{sid}",
        rule,
        fired,
        orjson.dumps({"signal_id": sid, "reasons": ["scripted"]}).decode(),
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
            routers=[signals_router, feedback.router, performance.router],
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
    assert "won" not in figures and "outcomes" not in figures  # item 2, not counted yet

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

    # The console reads the same rows with its own copy of the query.
    connection = await asyncpg.connect(url)
    try:
        args = {"rules": [RULE, "detractor"], "since": None, "until": datetime.now(UTC)}
        ours = await repository.rule_performance(conn=connection, **args)
        theirs = await console_rule_performance(conn=connection, **args)
        assert [dict(r) for r in ours] == [dict(r) for r in theirs]
    finally:
        await connection.close()

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
    quiet = {"rule": "seat_pressure"}
    assert REGISTRY.get_sample_value("kizashi_rule_fired_signals", quiet) == 0
    assert REGISTRY.get_sample_value("kizashi_rule_precision_ratio", quiet) is None


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
