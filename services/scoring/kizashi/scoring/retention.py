"""Score history's retention: points older than KIZASHI_SCORE_HISTORY_RETENTION_DAYS are
deleted by a periodic task (`history-prune`, on the sweep's interval, counted by the periodic
task metrics like the sweeps).

It deletes in chunks of PRUNE_CHUNK rows, each in its own short transaction, and at most
MAX_PRUNE_CHUNKS per run: a first run after a long outage (or a shortened retention) spreads
the backlog over several runs instead of holding one long transaction. With nothing to delete a
run is one probe of the `at` index."""

from datetime import UTC, datetime

from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.metrics import HISTORY_PRUNED
from kizashi.scoring.state import ScoringState

PRUNE_CHUNK = 5_000
MAX_PRUNE_CHUNKS = 20


async def prune_history(service: ScoringState, now: datetime | None = None) -> int:
    """Delete points older than the retention, a chunk at a time; returns how many."""
    before = service.history_since(now or datetime.now(UTC))
    total = 0
    for _ in range(MAX_PRUNE_CHUNKS):
        async with raw_transaction(service.engine) as connection:
            deleted = await repository.prune_history(
                conn=connection, before=before, limit=PRUNE_CHUNK
            )
        total += deleted
        if deleted < PRUNE_CHUNK:
            break
    if total:
        HISTORY_PRUNED.inc(total)
    return total
