"""Everyone's map, digested in the background: for each (segment, priority), its most
important accounts (by ARR, up to the map's cap) and how many fall in each density cell.

The map of everyone's accounts must choose the `MAP_POINTS` most important of all scored
accounts (priority, then ARR, which only the accounts' facts hold) and count the rest per
cell. Read per page, that is the facts of every account of the priorities drawn and a pass
over the whole scores table: 300–600 ms at 100,000 accounts. The digest holds, per (segment,
priority), the first `MAP_POINTS` accounts in that order and the cell counts: at most 12 ×
2,000 points and 12 × 400 counts, whatever the number of accounts, so any filter of segment
and priority is a merge of a few sorted lists and a sum of a few grids. Each replica
recomputes it every `REFRESH_S` seconds (two statements, about a second at 100,000
accounts), and as kizashi.console.snapshot says; the segments page takes its counts from it
too. One owner's map (a rep's own) reads the tables at once instead: the owner index keeps
it small."""

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.console import repository
from kizashi.console.charts import density_cell, importance
from kizashi.console.snapshot import Snapshot
from kizashi.runtime.db import raw_transaction

REFRESH_S = 30.0
MAP_POINTS = 2_000  # drawn as points; the rest as density cells
MAP_GRID = 20


@dataclass(frozen=True, slots=True)
class Group:
    """One (segment, priority): its first accounts by importance, its cells, its size."""

    points: list[dict]
    cells: dict[tuple[int, int], int]
    count: int


@dataclass(frozen=True, slots=True)
class MapView:
    points: list[dict]
    density: dict[tuple[int, int], int] | None  # None: every account is a point
    total: int


@dataclass
class MapDigest(Snapshot):
    groups: dict[tuple[str | None, str | None], Group] = field(default_factory=dict)
    unscored: int = 0

    async def compute(self, engine: AsyncEngine, now: datetime) -> None:
        async with raw_transaction(engine) as connection:
            await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            rows = await repository.map_leaders(conn=connection, limit=MAP_POINTS)
            cells = await repository.map_cells(conn=connection, grid=MAP_GRID)
            unscored = await repository.unscored_count(conn=connection, owner=None)
        points: dict[tuple, list[dict]] = {}
        for row in rows:
            point = dict(row)
            points.setdefault((point["segment"], point["priority"]), []).append(point)
        grids: dict[tuple, dict[tuple[int, int], int]] = {}
        for row in cells:
            grids.setdefault((row["segment"], row["priority"]), {})[(row["i"], row["j"])] = row["n"]
        self.groups = {
            key: Group(
                points=sorted(points.get(key, []), key=importance),
                cells=grid,
                count=sum(grid.values()),
            )
            for key, grid in grids.items()
        }
        self.unscored = unscored

    def view(self, segment: str | None, priority: str | None) -> MapView:
        """The map's points and cells for everyone's accounts in `segment` at `priority`."""
        chosen = [
            group
            for (s, p), group in self.groups.items()
            if (segment is None or s == segment) and (priority is None or p == priority)
        ]
        drawn = list(islice(heapq.merge(*(g.points for g in chosen), key=importance), MAP_POINTS))
        total = sum(g.count for g in chosen)
        if total <= len(drawn):
            return MapView(points=drawn, density=None, total=total)
        density: Counter[tuple[int, int]] = Counter()
        for group in chosen:
            density.update(group.cells)
        for point in drawn:  # the cells count the accounts not drawn as points
            density[density_cell(point["cs"], point["op"], MAP_GRID)] -= 1
        return MapView(points=drawn, density=dict(density), total=total)

    def counts(self) -> dict[tuple[str | None, str | None], int]:
        """Scored accounts per (segment, priority), as the digest was computed."""
        return {key: group.count for key, group in self.groups.items()}
