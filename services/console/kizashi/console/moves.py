"""Segment moves (the segment N days ago vs now, for N in 7 and 30), computed in the
background and kept in memory, so the segments page and the "moved" account lists answer at
once whatever the number of accounts.

Finding an account's segment N days ago takes a probe of score_history's key per account
with a point since then (nearly every active account): 3–4 s at 100,000 accounts, far over a
page's 300 ms. So each console replica recomputes the movers every `REFRESH_S` seconds (and
once, on the first page that needs them, after it starts; kizashi.console.snapshot says when
else); pages say when they were computed. A mover is (account id, owner, segment then,
segment now); the page groups them by owner."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.console import repository
from kizashi.console.snapshot import Snapshot
from kizashi.runtime.db import raw_transaction

DAYS = (7, 30)
REFRESH_S = 600.0


@dataclass(frozen=True)
class Mover:
    account_id: str
    owner: str | None
    was: str
    now: str


@dataclass
class Moves(Snapshot):
    movers: dict[int, list[Mover]] = field(default_factory=dict)

    async def compute(self, engine: AsyncEngine, now: datetime) -> None:
        found: dict[int, list[Mover]] = {}
        for days in DAYS:
            async with raw_transaction(engine) as connection:
                rows = await repository.segment_movers(
                    conn=connection, since=now - timedelta(days=days)
                )
            found[days] = [Mover(r["account_id"], r["owner"], r["was"], r["now"]) for r in rows]
        self.movers = found

    def counts(self, days: int, owner: str | None) -> list[tuple[str, str, int]]:
        """(was, now, n), the largest first."""
        counted = Counter(
            (m.was, m.now) for m in self.movers.get(days, []) if owner is None or m.owner == owner
        )
        return sorted(((w, n_, c) for (w, n_), c in counted.items()), key=lambda r: (-r[2], r))

    def accounts(self, days: int, was: str, owner: str | None) -> list[str]:
        return [
            m.account_id
            for m in self.movers.get(days, [])
            if m.was == was and (owner is None or m.owner == owner)
        ]
