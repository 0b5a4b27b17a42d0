"""The recycle process (issue #21) against a real PostgreSQL and a real broker, with the
clock moved by hand: an opportunity resolved "timing, 3 months" through triggers' real API is
on GET /v1/recycle, and the sweep past its time brings it back once as a `recycled`
opportunity saying why (stored and published once, also with two sweeps at the same moment,
as two replicas would run them); "no need" comes back on the consumer's change whose OP has
risen enough, and not before; bad resolutions get a clear 422. Then the console, served as
deployed, shows the list (its text escaped) and the stage KPIs.

Its own database and broker (a sweep at a future time must not touch the shared stack)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from kizashi.console import repository as console_repository
from kizashi.console import security
from kizashi.contracts.topics import SCORES_CHANGED, SIGNAL_TOPICS
from kizashi.runtime.app import create_service_app
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.tools.embedded import free_port
from kizashi.triggers import api, recycle_api
from kizashi.triggers.consumer import handle_changes
from kizashi.triggers.lifecycle import apply_action
from kizashi.triggers.recycle import add_months, returned_signal_id
from kizashi.triggers.rules import load_rules_config
from kizashi.triggers.rules.catalogue import RecycleConfig
from kizashi.triggers.settings import TriggersSettings
from kizashi.triggers.state import TriggersState
from kizashi.triggers.sweep import sweep_once
from tests.support.console import served_console

TOKEN = "recycle-test-token"  # noqa: S105
PASSWORD = "a fine long password"  # noqa: S105
DANA = "dana@reps.example"
MANAGER = "mia@reps.example"
SECOND = timedelta(seconds=1)


@pytest.fixture(scope="module")
async def triggers_api(own_database: str):
    """Triggers' signals and recycle API on a real uvicorn server; (client, base URL)."""
    settings = TriggersSettings(database_url=own_database, api_token=TOKEN)

    async def setup(runtime):
        return TriggersState(runtime=runtime, rules=load_rules_config(None))

    app = create_service_app(
        service="triggers",
        settings=settings,
        routers=[api.router, recycle_api.router],
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
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client, base
    server.should_exit = True
    await task


def change(
    account: str, at: datetime, op: float, *, segment: str = "expand", features: dict | None = None
) -> ConsumerRecord:
    """A scores.changed as scoring publishes it (the fields triggers reads)."""
    value = orjson.dumps(
        {
            "account_id": account,
            "computed_at": at.isoformat(),
            "before": None,
            "after": {"cs": 80.0, "op": op, "segment": segment, "priority": "high"},
            "account": {"account_id": account, "name": f"<i>{account}</i>", "owner_email": DANA},
            "features": features or {},
        }
    )
    return ConsumerRecord(
        SCORES_CHANGED, 0, 0, 0, 0, account.encode(), value, None, 0, len(value), ()
    )


async def signals_of(url: str, account: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            """SELECT signal_id, rule, status, fired_at, resolution, resolution_months,
                      payload::text AS payload
               FROM signals WHERE account_id = $1 ORDER BY fired_at, signal_id""",
            account,
        )
    finally:
        await connection.close()


async def published(bootstrap: str, topic: str) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [orjson.loads(r.value)["signal_id"] for rs in batches.values() for r in rs]
    finally:
        await consumer.stop()


async def opportunity(
    triggers: TriggersState, url: str, name: str, op: float = 80.0
) -> tuple[str, str]:
    """A new account whose first change fires expansion_ready; (account id, signal id)."""
    account = f"{name}-{uuid.uuid4().hex[:6]}"
    await handle_changes(triggers, [change(account, datetime.now(UTC) - SECOND, op)])
    [signal] = await signals_of(url, account)
    assert signal["rule"] == "expansion_ready"
    return account, signal["signal_id"]


async def test_timing_waits_on_the_list_and_comes_back_once(
    triggers, triggers_api, own_database, own_broker
) -> None:
    client, _ = triggers_api
    account, sid = await opportunity(triggers, own_database, "timing")
    answer = await client.post(
        f"/v1/signals/{sid}/resolve", json={"reason": "timing", "months": 3, "by": DANA}
    )
    assert answer.status_code == 200, answer.text
    set_at = datetime.now(UTC)
    [resolved] = await signals_of(own_database, account)
    assert (resolved["status"], resolved["resolution"], resolved["resolution_months"]) == (
        "resolved",
        "timing",
        3,
    )

    listed = await client.get("/v1/recycle", params={"owner": DANA.upper(), "reason": "timing"})
    assert listed.status_code == 200, listed.text
    [entry] = [e for e in listed.json()["items"] if e["account_id"] == account]
    returns_at = datetime.fromisoformat(entry["returns_at"])
    assert abs(returns_at - add_months(set_at, 3)) < timedelta(minutes=1)
    assert (entry["reason"], entry["months"], entry["set_by"], entry["status"]) == (
        "timing",
        3,
        DANA,
        "waiting",
    )
    assert entry["signal_id"] == sid and entry["rule"] == "expansion_ready"

    # A second past the sweep, not before: nothing comes back early.
    await sweep_once(triggers, now=returns_at - SECOND)
    assert len(await signals_of(own_database, account)) == 1
    back_at = returns_at + SECOND
    # Two sweeps at the same moment, as two replicas would run them.
    await asyncio.gather(sweep_once(triggers, now=back_at), sweep_once(triggers, now=back_at))
    await sweep_once(triggers, now=back_at + timedelta(minutes=1))
    _, recycled = await signals_of(own_database, account)
    assert recycled["signal_id"] == returned_signal_id(account, sid)
    assert (recycled["rule"], recycled["status"], recycled["fired_at"]) == (
        "recycled",
        "open",
        back_at,
    )
    payload = orjson.loads(recycled["payload"])
    assert payload["reasons"][0] == (
        f"came back: timing was 3 months, set on {set_at:%Y-%m-%d} by {DANA}"
    )
    assert payload["kind"] == "opportunity" and payload["account"]["owner_email"] == DANA
    sent = await published(own_broker, SIGNAL_TOPICS["opportunity"])
    assert sent.count(recycled["signal_id"]) == 1

    gone = await client.get("/v1/recycle", params={"reason": "timing"})
    assert account not in [e["account_id"] for e in gone.json()["items"]]
    done = await client.get("/v1/recycle", params={"status": "returned", "owner": DANA})
    [back] = [e for e in done.json()["items"] if e["account_id"] == account]
    assert back["returned_signal_id"] == recycled["signal_id"]


async def test_no_need_returns_when_op_has_risen_enough(
    triggers, triggers_api, own_database
) -> None:
    client, _ = triggers_api
    account, sid = await opportunity(triggers, own_database, "need", op=60.0)
    answer = await client.post(f"/v1/signals/{sid}/resolve", json={"reason": "no_need"})
    assert answer.status_code == 200, answer.text
    [entry] = [
        e
        for e in (await client.get("/v1/recycle", params={"reason": "no_need"})).json()["items"]
        if e["account_id"] == account
    ]
    assert (entry["returns_at"], entry["op_at_set"], entry["op_target"]) == (None, 60.0, 70.0)

    now = datetime.now(UTC)
    # OP 69: not enough (and the segment stays expand: expansion_ready does not re-fire).
    await handle_changes(triggers, [change(account, now, 69.0)])
    assert [s["rule"] for s in await signals_of(own_database, account)] == ["expansion_ready"]
    # Two changes in one batch, the second past the target: one return, with the batch's OP.
    await handle_changes(
        triggers, [change(account, now + SECOND, 71.0), change(account, now + 2 * SECOND, 74.0)]
    )
    await handle_changes(triggers, [change(account, now + 3 * SECOND, 90.0)])
    signals = await signals_of(own_database, account)
    assert [s["rule"] for s in signals] == ["expansion_ready", "recycled"]
    reason = orjson.loads(signals[1]["payload"])["reasons"][0]
    assert reason.startswith("came back: no need, set on ")
    assert reason.endswith("by api; OP rose from 60 to 74 (asked: 70)")


async def test_no_budget_returns_at_the_next_fiscal_year_scoring_knows(
    triggers, triggers_api, own_database
) -> None:
    """The fiscal year end month is scoring's feature (the CRM's, or inferred from purchases):
    a year ending in March brings a no_budget account back on the next 1 April."""
    client, _ = triggers_api
    account, sid = await opportunity(triggers, own_database, "budget")
    now = datetime.now(UTC)
    await handle_changes(
        triggers, [change(account, now, 80.0, features={"fiscal_year_end_month": 3.0})]
    )
    answer = await client.post(f"/v1/signals/{sid}/resolve", json={"reason": "no_budget"})
    assert answer.status_code == 200, answer.text
    [entry] = [
        e
        for e in (await client.get("/v1/recycle", params={"reason": "no_budget"})).json()["items"]
        if e["account_id"] == account
    ]
    april = datetime(now.year + (now.month >= 4), 4, 1, tzinfo=UTC)
    assert datetime.fromisoformat(entry["returns_at"]) == april
    assert entry["fiscal_year_known"] is True


async def test_not_contacted_returns_at_once_to_whom_it_is_reassigned(
    triggers, own_database
) -> None:
    """The rules.yaml in force when it is resolved decides whom it goes back to."""
    recycling = RecycleConfig.model_validate({"not_contacted": {"reassign_to": "SDR@reps.example"}})
    account, sid = await opportunity(triggers, own_database, "fresh")
    now = datetime.now(UTC)
    async with raw_transaction(triggers.engine) as connection:
        await apply_action(
            connection,
            signal_id=sid,
            action="resolve",
            actor=DANA,
            now=now,
            reason="not_contacted",
            recycling=recycling,
        )
    await sweep_once(triggers, now=now + SECOND)
    _, back = await signals_of(own_database, account)
    payload = orjson.loads(back["payload"])
    assert back["rule"] == "recycled" and back["fired_at"] == now + SECOND
    assert payload["account"]["owner_email"] == "sdr@reps.example"
    assert payload["reasons"][0] == (
        f"came back: not contacted yet, set on {now:%Y-%m-%d} by {DANA}; "
        f"now for sdr@reps.example (was {DANA})"
    )


async def test_bad_resolutions_get_a_clear_422(triggers, triggers_api, own_database) -> None:
    client, _ = triggers_api
    _, sid = await opportunity(triggers, own_database, "bad")
    for body, words in (
        (None, "needs a reason"),
        ({}, "needs a reason"),
        ({"reason": "timing"}, "needs 'months'"),
        ({"reason": "no_need", "months": 2}, "only with reason 'timing'"),
        ({"reason": "someday"}, "reason"),
        ({"reason": "timing", "months": 30}, "months"),
    ):
        answer = await client.post(f"/v1/signals/{sid}/resolve", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert words in answer.text, (body, answer.text)
    assert (await client.get(f"/v1/signals/{sid}")).json()["status"] == "open"
    # A churn risk resolves without a reason, and refuses one.
    account, churn = f"churn-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    connection = await asyncpg.connect(own_database)
    try:
        await connection.execute(
            """INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode,
                   fired_at, payload) VALUES ($1, $2, 'churn_risk', 'detractor', 'high', '1',
                   now(), '{}')""",
            churn,
            account,
        )
    finally:
        await connection.close()
    refused = await client.post(f"/v1/signals/{churn}/resolve", json={"reason": "won"})
    assert refused.status_code == 422 and "churn-risk" in refused.json()["detail"]
    assert (await client.post(f"/v1/signals/{churn}/resolve")).status_code == 200
    # The list: a cursor of another filter, an unknown reason, no token.
    assert (await client.get("/v1/recycle", params={"reason": "won"})).status_code == 422
    bad_cursor = await client.get("/v1/recycle", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert bad_cursor.status_code == 422
    async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
        assert (await anonymous.get("/v1/recycle")).status_code == 401


async def test_the_list_pages_with_a_cursor(triggers, triggers_api, own_database) -> None:
    client, _ = triggers_api
    owner = f"pager-{uuid.uuid4().hex[:6]}@reps.example"
    for months in (2, 5, 1):
        account, sid = await opportunity(triggers, own_database, "page")
        connection = await asyncpg.connect(own_database)
        try:  # this account's owner is someone of its own, to list it alone
            await connection.execute(
                """UPDATE trigger_accounts SET latest = jsonb_set(latest::jsonb,
                   '{account,owner_email}', to_jsonb($2::text))::json WHERE account_id = $1""",
                account,
                owner,
            )
        finally:
            await connection.close()
        body = {"reason": "timing", "months": months}
        assert (await client.post(f"/v1/signals/{sid}/resolve", json=body)).status_code == 200
    seen, cursor, cursors = [], None, []
    while True:
        params = {"owner": owner, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/recycle", params=params)).json()
        seen += [e["months"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    assert seen == [1, 2, 5] and len(cursors) == 1  # soonest return first, each once
    # A cursor continues only the listing it was made for.
    other = await client.get(
        "/v1/recycle", params={"owner": owner, "reason": "timing", "cursor": cursors[0]}
    )
    assert other.status_code == 422 and "another order or filter" in other.text


@pytest.fixture(scope="module")
async def console(own_database, triggers_api, tmp_path_factory):
    """The console as deployed (`kizashi serve console`) on this database and this triggers
    API, with a manager to sign in as; its base URL."""
    _, triggers_base = triggers_api
    engine = create_engine(own_database)
    try:
        async with raw_transaction(engine) as c:
            await console_repository.add_user(
                conn=c,
                email=MANAGER,
                name="Mia",
                slack=None,
                role="manager",
                password_hash=security.hash_password(PASSWORD),
            )
    finally:
        await engine.dispose()
    env = {
        "KIZASHI_DATABASE_URL": own_database,
        "KIZASHI_API_TOKEN": TOKEN,
        "KIZASHI_TRIGGERS_URL": triggers_base,
    }
    log = tmp_path_factory.mktemp("recycle-console") / "console.log"
    async with served_console(env, log) as base:
        yield base


async def test_the_console_shows_the_list_and_the_stages(
    triggers, triggers_api, own_database, console
) -> None:
    client, _ = triggers_api
    before = await stage_figures(console)
    account, sid = await opportunity(triggers, own_database, "shown")
    by = "<script>alert(1)</script>@reps.example"
    body = {"reason": "no_budget", "by": by}
    assert (await client.post(f"/v1/signals/{sid}/resolve", json=body)).status_code == 200
    _, won = await opportunity(triggers, own_database, "won")
    answer = await client.post(f"/v1/signals/{won}/resolve", json={"reason": "won"})
    assert answer.status_code == 200
    _, open_one = await opportunity(triggers, own_database, "form")

    async with httpx.AsyncClient(base_url=console, timeout=15) as browser:
        form = await browser.get("/signin")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        signed = await browser.post(
            "/signin", data={"email": MANAGER, "password": PASSWORD, "csrf": csrf, "next": "/"}
        )
        assert signed.status_code == 303
        page = await browser.get("/recycle", params={"owner": "all", "reason": "no_budget"})
        assert page.status_code == 200, page.text
        assert f'data-entry="{sid}"' in page.text
        assert 'href="/recycle" aria-current="page"' in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
        assert f"&lt;i&gt;{account}&lt;/i&gt;" in page.text
        assert "fiscal year unknown" in page.text
        # The resolve form asks why, for opportunities; without a reason it is refused.
        shown = await browser.get(f"/signals/{open_one}")
        assert shown.status_code == 200 and '<select name="reason"' in shown.text
        token = shown.text.split('name="csrf" value="')[1].split('"')[0]
        url = f"/signals/{open_one}/resolve"
        refused = await browser.post(url, data={"csrf": token, "reason": "", "months": ""})
        assert refused.status_code == 422 and "needs a reason" in refused.text
        later = {"csrf": token, "reason": "timing", "months": "2", "back": "/signals"}
        assert (await browser.post(url, data=later)).status_code == 303
        history = await browser.get(f"/signals/{open_one}")
        assert "resolved: timing (2 months)" in history.text
        kpis = await browser.get("/kpis")
        assert kpis.status_code == 200 and 'data-stage-rule="expansion_ready"' in kpis.text
        assert 'data-recycle="no_budget"' in kpis.text

    stages = await stage_figures(console)
    # Three more opportunities of expansion_ready, all three acted on, one won; one more
    # account waiting for its budget.
    rule = by_rule(stages)
    was = by_rule(before)
    assert (rule["signals"], rule["acted_on"], rule["won"]) == (
        was["signals"] + 3,
        was["acted_on"] + 3,
        was["won"] + 1,
    )
    assert rule["won_rate"] == round(rule["won"] / rule["signals"], 4)
    assert rule["won_of_acted_rate"] == round(rule["won"] / rule["acted_on"], 4)
    waiting, waited = stages["recycle_waiting"], before["recycle_waiting"]
    assert waiting["by_reason"]["no_budget"] == waited["by_reason"]["no_budget"] + 1
    assert waiting["by_reason"]["timing"] == waited["by_reason"]["timing"] + 1
    assert waiting["total"] == sum(waiting["by_reason"].values())
    entries = (await client.get("/v1/recycle", params={"reason": "timing"})).json()["items"]
    assert any(e["signal_id"] == open_one and e["months"] == 2 for e in entries)


async def stage_figures(console: str) -> dict:
    async with httpx.AsyncClient(
        base_url=console, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15
    ) as service:
        answer = await service.get("/v1/kpis/stages", params={"period": "30d"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_rule(stages: dict, rule: str = "expansion_ready") -> dict:
    found = [r for r in stages["by_rule"] if r["rule"] == rule]
    return found[0] if found else {"signals": 0, "acted_on": 0, "won": 0}
