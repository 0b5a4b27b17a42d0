"""What the console computes in the background and keeps in memory (the segment moves, the
digest of everyone's map), and how fresh it is kept.

Each console replica recomputes a snapshot every so often (its own `REFRESH_S`, run by the
runtime's `every`), and once on the first page that needs it. Where computing it is quick
(under `QUICK_S`: a small install, a demo, the tests), a page also recomputes it when it is
older than `FRESH_S`, so a few hundred accounts always look current; at 100,000 accounts a
page never waits for one, and says when it was computed. The background skips a refresh
while the last one is younger than `SHARE` times what it took, so a snapshot never takes
more than 1/`SHARE` of a replica's (and its database's) time, however many accounts."""

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

QUICK_S = 0.1
FRESH_S = 1.0
SHARE = 20


@dataclass
class Snapshot:
    computed_at: datetime | None = None
    took_s: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def compute(self, engine: AsyncEngine, now: datetime) -> None:
        """Read what the snapshot keeps and replace it (in one assignment per field)."""
        raise NotImplementedError

    async def refresh(self, engine: AsyncEngine) -> None:
        """The background's refresh (see `SHARE`)."""
        async with self.lock:
            if self._age() >= SHARE * self.took_s:
                await self._compute_timed(engine)

    async def ready(self, engine: AsyncEngine) -> None:
        """Computed at least once; and at most `FRESH_S` old where computing is quick."""
        if self._fresh():
            return
        async with self.lock:
            if not self._fresh():  # another page may have computed it meanwhile
                await self._compute_timed(engine)

    def _fresh(self) -> bool:
        if self.computed_at is None:
            return False
        return self.took_s > QUICK_S or self._age() <= FRESH_S

    def _age(self) -> float:
        if self.computed_at is None:
            return float("inf")
        return (datetime.now(UTC) - self.computed_at).total_seconds()

    async def _compute_timed(self, engine: AsyncEngine) -> None:
        now = datetime.now(UTC)
        started = time.perf_counter()
        await self.compute(engine, now)
        self.took_s = time.perf_counter() - started
        self.computed_at = now
