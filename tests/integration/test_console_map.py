"""The console's map on a real PostgreSQL: everyone's map from the background digest
(kizashi.console.mapdigest) and one owner's read at once draw the same accounts the map's
rule chooses (the 2,000 most important by priority, then ARR, then id), count every other one
in its density cell, and agree with the tables for every filter of segment and priority."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass

import orjson
import pytest

from kizashi.console import repository
from kizashi.console.charts import density_cell, importance
from kizashi.console.mapdigest import MAP_GRID, MAP_POINTS, MapDigest
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.tools.migrate import upgrade
from tests.support.infra import _create_database, _drop_database, _with_database

OWNERS = ("ann@map.example", "ben@map.example", "cy@map.example")
SEGMENTS = ("expand", "recover", "nurture", "at_risk")


@dataclass(frozen=True)
class Account:
    account_id: str
    owner: str
    arr: object  # a number, a string (not a number: no ARR), or None (no fact)
    cs: float | None  # None: not scored yet
    op: float | None
    segment: str | None
    priority: str | None

    def point(self) -> dict:
        arr = self.arr if isinstance(self.arr, int | float) else None
        return {"account_id": self.account_id, "priority": self.priority, "arr": arr}


def _accounts() -> list[Account]:
    """2,100 of one (segment, priority), so that group alone is over the map's cap, 500 of
    every kind, and 30 not scored yet."""
    rng = random.Random(15)
    accounts = []
    for n in range(2_630):
        if n < 2_100:
            segment, priority, cs, op = "nurture", "low", rng.uniform(60, 100), rng.uniform(0, 50)
        else:
            cs, op = rng.uniform(0, 100), rng.uniform(0, 100)
            segment = (
                ("expand" if op >= 50 else "nurture")
                if cs >= 60
                else ("recover" if op >= 50 else "at_risk")
            )
            priority = rng.choice(("high", "medium", "low"))
        arr = rng.choice([round(rng.uniform(1_000, 900_000)), None, "lots", 25_000])
        if n >= 2_600:
            cs = op = segment = priority = None
        accounts.append(Account(f"m-{n:05d}", OWNERS[n % 3], arr, cs, op, segment, priority))
    return accounts


@pytest.fixture(scope="module")
async def loaded(database_url):
    database = f"kizashi_map_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, database)
    url = _with_database(database_url, database)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    accounts = _accounts()
    try:
        async with raw_transaction(engine) as connection:
            await connection.executemany(
                "INSERT INTO accounts (account_id, facts, state) VALUES ($1, $2::jsonb, '{}')",
                [
                    (
                        a.account_id,
                        orjson.dumps(
                            {"name": f"Name {a.account_id}", "owner_email": a.owner.upper()}
                            | ({} if a.arr is None else {"arr": a.arr})
                        ).decode(),
                    )
                    for a in accounts
                ],
            )
            await connection.executemany(
                """
                INSERT INTO scores (account_id, cs, op, segment, priority, breakdown, features,
                                    config_version, computed_at)
                VALUES ($1, $2, $3, $4, $5, '[]', '{}', 'test', now())
                """,
                [
                    (a.account_id, a.cs, a.op, a.segment, a.priority)
                    for a in accounts
                    if a.cs is not None
                ],
            )
        yield engine, accounts
    finally:
        await engine.dispose()
        await _drop_database(database_url, database)


def _expected(accounts: list[Account]) -> tuple[list[str], dict | None]:
    """The map's rule, by hand: the ids drawn, and the other accounts per cell."""
    ranked = sorted(accounts, key=lambda a: importance(a.point()))
    drawn, rest = ranked[:MAP_POINTS], ranked[MAP_POINTS:]
    cells = Counter(density_cell(a.cs, a.op, MAP_GRID) for a in rest)
    return [a.account_id for a in drawn], (dict(cells) if rest else None)


FILTERS = [(None, None), ("nurture", None), (None, "low"), ("nurture", "low")] + [
    (segment, priority) for segment in SEGMENTS for priority in ("high", "medium")
]


@pytest.mark.parametrize(("segment", "priority"), FILTERS)
async def test_everyones_map_from_the_digest_is_what_the_tables_say(
    loaded, segment, priority
) -> None:
    engine, accounts = loaded
    digest = MapDigest()
    await digest.ready(engine)
    scored = [a for a in accounts if a.cs is not None]
    chosen = [a for a in scored if segment in (None, a.segment) and priority in (None, a.priority)]
    ids, cells = _expected(chosen)
    view = digest.view(segment, priority)
    assert [p["account_id"] for p in view.points] == ids
    assert view.total == len(chosen)
    if cells is None:
        assert view.density is None
    else:
        assert {c: n for c, n in view.density.items() if n} == cells
    by_id = {a.account_id: a for a in accounts}
    for point in view.points[:50]:
        account = by_id[point["account_id"]]
        assert (point["cs"], point["op"], point["priority"]) == (
            account.cs,
            account.op,
            account.priority,
        )
        assert point["name"] == f"Name {account.account_id}"

    assert digest.unscored == 30
    assert digest.counts() == Counter((a.segment, a.priority) for a in scored)


@pytest.mark.parametrize(("segment", "priority"), [(None, None), ("nurture", "low")])
async def test_one_owners_map_is_read_at_once_by_the_same_rule(loaded, segment, priority) -> None:
    engine, accounts = loaded
    owner = OWNERS[1]
    mine = [
        a
        for a in accounts
        if a.owner == owner
        and a.cs is not None
        and (segment is None or a.segment == segment)
        and (priority is None or a.priority == priority)
    ]
    ids, _ = _expected(mine)
    async with raw_transaction(engine) as connection:
        points = await repository.map_points(
            conn=connection, owner=owner, segment=segment, priority=priority, limit=MAP_POINTS
        )
        unscored = await repository.unscored_count(conn=connection, owner=owner)
    assert [p["account_id"] for p in points] == ids
    assert unscored == sum(1 for a in accounts if a.owner == owner and a.cs is None)
