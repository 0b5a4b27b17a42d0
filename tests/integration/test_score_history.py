"""Score history against real PostgreSQL and a real broker: every published score is kept in
the batch's own statement, a backfill (kizashi demo's four weeks) draws as the weeks it tells
about, positions as of a past time come from one statement, old points are pruned, and the
history API answers clear 4xx."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.app import create_app
from kizashi.scoring.backfill import end_of_day
from kizashi.scoring.consumer import handle_events
from kizashi.scoring.features import utc_day
from kizashi.scoring.metrics import HISTORY_PRUNED
from kizashi.scoring.retention import prune_history
from kizashi.scoring.settings import ScoringSettings
from kizashi.tools.demo import story_events
from tests.integration.scoring_support import (
    changes_for,
    event,
    records,
    usage,
)

TOKEN = "history-test-token"


@pytest.fixture(scope="module")
async def api(service, servers):
    """The scoring app's routes (auth, error handlers) on the tests' service, no lifespan."""
    app = create_app(
        ScoringSettings(
            api_token=TOKEN,
            database_url=servers["url"],
            kafka_bootstrap_servers=servers["bootstrap"],
        )
    )
    app.state.service = service
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


def _account(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def _history(service, account: str) -> list[dict]:
    async with raw_transaction(service.engine) as connection:
        return await repository.score_history(
            conn=connection,
            account_id=account,
            since=datetime(2000, 1, 1, tzinfo=UTC),
            until=datetime.now(UTC) + timedelta(days=1),
            limit=10_000,
        )


async def test_each_published_live_score_is_one_point_at_its_time(service, servers) -> None:
    account = _account("live")
    now = datetime.now(UTC)
    await handle_events(service, records([usage(account, now - timedelta(minutes=5))]))
    busy = [usage(account, now - timedelta(minutes=1), user_id=f"u{i}") for i in range(9)]
    await handle_events(service, records(busy))
    # A replay of the same ids changes nothing, publishes nothing, keeps nothing.
    await handle_events(service, records(busy))
    points = await _history(service, account)
    changes = await changes_for(servers["bootstrap"], account)
    assert [p["at"] for p in points] == [c.computed_at for c in changes]
    assert [(p["cs"], p["op"], p["segment"], p["priority"]) for p in points] == [
        (c.after.cs, c.after.op, c.after.segment, c.after.priority) for c in changes
    ]
    assert len(points) == len(changes) >= 2


async def test_the_demo_backfill_draws_as_the_four_weeks_it_tells_about(service) -> None:
    now = datetime.now(UTC)
    history, _ = story_events(now)
    suffix = uuid.uuid4().hex[:6]
    for item in history:
        item["account_id"] = f"{item['account_id']}-{suffix}"
        item["received_at"] = now.isoformat()
    assert history == sorted(history, key=lambda e: e["occurred_at"])  # the demo sends oldest first
    # Split across three batches, as the consumer may hand them over.
    third = len(history) // 3
    for start in range(0, len(history), third):
        await handle_events(service, records(history[start : start + third]))

    acme = await _history(service, f"acme-{suffix}")
    days = sorted({utc_day(p["at"].timestamp()) for p in acme})
    today = utc_day(now.timestamp())
    # A point weeks back (the facts 60 days ago, the usage from 28 days ago) to the last one
    # of the backfill; not one point at "now".
    assert today - days[0] >= 28
    assert len([d for d in days if today - 28 <= d < today]) >= 10
    assert max(p["at"] for p in acme) >= now  # the live point of the last batch
    past = [p for p in acme if p["at"] < now - timedelta(hours=1)]
    assert all(p["at"] == end_of_day(utc_day(p["at"].timestamp())) for p in past)
    # Globex stopped three weeks ago: its backfill shows it busy four weeks back.
    globex = await _history(service, f"globex-{suffix}")
    assert min(p["at"] for p in globex if p["cs"] > 0) <= now - timedelta(days=20)


async def test_a_batch_split_mid_day_keeps_one_point_for_that_day(service) -> None:
    account = _account("split")
    now = datetime.now(UTC)
    day = now.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=5)
    early = [usage(account, day - timedelta(hours=h), user_id=f"u{h}") for h in range(1, 4)]
    late = [usage(account, day + timedelta(hours=h), user_id=f"v{h}") for h in range(1, 9)]
    await handle_events(service, records(early))
    await handle_events(service, records(late))
    points = await _history(service, account)
    on_day = [p for p in points if p["at"] == end_of_day(utc_day(day.timestamp()))]
    assert len(on_day) == 1
    # The second batch's fuller day replaced the first one's value.
    assert on_day[0]["cs"] == max(p["cs"] for p in points if p["at"] < now - timedelta(hours=1))


async def test_events_older_than_what_the_state_holds_add_no_past_point(service) -> None:
    account = _account("late")
    now = datetime.now(UTC)
    await handle_events(service, records([usage(account, now - timedelta(hours=1))]))
    before = await _history(service, account)
    old = [usage(account, now - timedelta(days=d), user_id=f"o{d}") for d in (3, 6, 9)]
    await handle_events(service, records(old))
    after = await _history(service, account)
    assert all(p["at"] >= before[0]["at"] for p in after)  # no point days back


async def test_positions_as_of_a_past_time_and_the_api(service, api) -> None:
    first, second = _account("pos-a"), _account("pos-b")
    now = datetime.now(UTC)
    for account, user_count in ((first, 2), (second, 9)):
        stream = [
            event("account_update", account, now - timedelta(days=40), name=f"<b>{account}</b>")
        ]
        stream += [
            usage(account, now - timedelta(days=d, hours=1), user_id=f"u{u}")
            for d in range(1, 20)
            for u in range(user_count)
        ]
        await handle_events(service, records(sorted(stream, key=lambda e: e["occurred_at"])))
    as_of = now - timedelta(days=10)
    async with raw_transaction(service.engine) as connection:
        rows = await repository.positions_at(conn=connection, as_of=as_of, after=None, limit=10**6)
    mine = {r["account_id"]: r for r in rows if r["account_id"] in (first, second)}
    assert set(mine) == {first, second}
    for account in (first, second):
        points = [p for p in await _history(service, account) if p["at"] <= as_of]
        assert mine[account]["at"] == points[-1]["at"]
        assert mine[account]["cs"] == points[-1]["cs"]

    response = await api.get("/v1/positions", params={"as_of": as_of.isoformat(), "limit": 10_000})
    assert response.status_code == 200, response.text
    body = response.json()
    found = {item["account_id"]: item for item in body["items"]}
    assert found[first]["cs"] == mine[first]["cs"]
    assert set(found[first]) == {"account_id", "at", "cs", "op", "segment", "priority"}
    # Pages by account id.
    page = (await api.get("/v1/positions", params={"days_ago": 10, "limit": 1})).json()
    assert len(page["items"]) == 1 and page["next_after"] == page["items"][0]["account_id"]
    following = await api.get(
        "/v1/positions", params={"days_ago": 10, "limit": 1, "after": page["next_after"]}
    )
    assert following.json()["items"][0]["account_id"] > page["next_after"]

    response = await api.get(
        f"/v1/accounts/{first}/history", params={"since": (now - timedelta(days=30)).isoformat()}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account_id"] == first and body["truncated"] is False
    ats = [datetime.fromisoformat(p["at"]) for p in body["points"]]
    assert ats == sorted(ats) and len(ats) >= 10
    assert set(body["points"][0]) == {"at", "cs", "op", "segment", "priority"}
    # The default window is the last 90 days; a limit keeps the latest points.
    latest = (await api.get(f"/v1/accounts/{first}/history", params={"limit": 2})).json()
    assert latest["truncated"] is True
    assert [p["at"] for p in latest["points"]] == [p["at"] for p in body["points"][-2:]]


async def test_the_history_api_answers_clear_4xx(service, api) -> None:
    account = _account("api")
    await handle_events(service, records([usage(account, datetime.now(UTC))]))
    url = f"/v1/accounts/{account}/history"
    assert (await api.get(url, headers={"Authorization": ""})).status_code == 401
    assert (await api.get("/v1/accounts/no-such-account/history")).status_code == 404
    cases = {
        "since after until": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        "no offset": {"since": "2026-01-01T00:00:00"},
        "not a time": {"until": "yesterday"},
        "limit 0": {"limit": "0"},
        "before year 1": {"since": "0001-01-01T00:00:00+05:00"},
    }
    for case, params in cases.items():
        response = await api.get(url, params=params)
        assert response.status_code == 422, (case, response.text)
    bad = await api.get(url, params={"since": "2026-01-01T00:00:00"})
    assert "since" in bad.json()["detail"]
    # "+" unencoded in a query string arrives as a space, and still means "+".
    ok = await api.get(f"{url}?since=2020-01-01T09:00:00+09:00")
    assert ok.status_code == 200 and len(ok.json()["points"]) == 1
    early = await api.get(url, params={"until": "0001-01-02T00:00:00Z"})
    assert early.status_code == 200 and early.json()["points"] == []
    both = await api.get("/v1/positions", params={"as_of": "2026-01-01T00:00:00Z", "days_ago": 7})
    assert both.status_code == 422
    # The account itself is still served by the accounts route.
    assert (await api.get(f"/v1/accounts/{account}")).status_code == 200


async def test_pruning_deletes_points_past_the_retention_in_chunks(service, monkeypatch) -> None:
    account = _account("prune")
    now = datetime.now(UTC)
    ages = [500, 450, 401, 399, 10]
    async with raw_transaction(service.engine) as connection:
        await connection.executemany(
            """INSERT INTO score_history (account_id, at, cs, op, segment, priority)
               VALUES ($1, $2, 50, 50, 'expand', 'low')""",
            [(account, now - timedelta(days=age)) for age in ages],
        )
    monkeypatch.setattr("kizashi.scoring.retention.PRUNE_CHUNK", 2)
    before = HISTORY_PRUNED._value.get()
    deleted = await prune_history(service, now)
    assert deleted >= 3
    assert HISTORY_PRUNED._value.get() - before == deleted
    left = await _history(service, account)
    assert [round((now - p["at"]) / timedelta(days=1)) for p in left] == [399, 10]
    assert await prune_history(service, now) == 0


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_positions_take_one_key_probe_per_account_and_sort_nothing(service) -> None:
    """The map's trails read every account's position as of a past time: the plan walks the
    scores' key in account order and probes score_history's key once per account."""
    async with raw_transaction(service.engine) as connection:
        await connection.execute("SET LOCAL enable_seqscan = off")
        # The table is nearly empty and never analysed: the planner guesses its row count
        # from the row width, and a guess of ~230 rows made sorting them look as cheap as
        # walking the key (three columns added to scores in 0017 tipped it). A plan with a
        # Sort still shows one when no sort-free plan exists, so this still fails on a query
        # the key cannot serve.
        await connection.execute("SET LOCAL enable_sort = off")
        plan = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) {repository.POSITIONS_SQL}",
            datetime.now(UTC),
            None,
            5_001,
        )
    plan = plan if isinstance(plan, list) else orjson.loads(plan)
    nodes = list(_nodes(plan[0]["Plan"]))
    kinds = {node["Node Type"] for node in nodes}
    assert "Sort" not in kinds and "Seq Scan" not in kinds, plan
    probes = [n for n in nodes if n.get("Relation Name") == "score_history"]
    assert probes and all(n.get("Index Name") == "score_history_pkey" for n in probes), plan
