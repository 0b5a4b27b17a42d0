"""The periodic re-evaluation: time alone lowers scores (decay, silence, the renewal calendar).

It reads only the accounts whose `next_check_at` has come, so its cost follows the accounts
whose scores can have moved, not the number of idle ones. `kizashi rescore` reuses it to
recompute everything after a config change.
"""

from datetime import UTC, datetime

from kizashi.runtime.db import raw_transaction, retry_transient
from kizashi.scoring import repository
from kizashi.scoring.metrics import record_outcomes
from kizashi.scoring.persist import rescore_and_write
from kizashi.scoring.state import ScoringState

SWEEP_BATCH = 500
# Bounds one sweep's work; whatever is left is due again at the next interval.
MAX_SWEEP_BATCHES = 40


async def rescore_accounts(
    service: ScoringState, account_ids: list[str], *, cause: str, now: datetime
) -> int:
    async def attempt() -> int:
        async with raw_transaction(service.engine) as connection:
            stored = await repository.lock_accounts(conn=connection, account_ids=account_ids)
            known = {i: s for i, s in stored.items() if s.state is not None}
            outcomes = await rescore_and_write(service, connection, known, {}, cause=cause, now=now)
        record_outcomes(outcomes, cause)
        return len(outcomes)

    return await retry_transient(attempt)


async def sweep_once(service: ScoringState, now: datetime | None = None) -> int:
    """Re-score every account that is due, a batch at a time; returns how many."""
    now = now or datetime.now(UTC)
    total = 0
    for _ in range(MAX_SWEEP_BATCHES):
        async with raw_transaction(service.engine) as connection:
            due = await repository.due_for_check(conn=connection, now=now, limit=SWEEP_BATCH)
        if due:
            total += await rescore_accounts(service, due, cause="sweep", now=now)
        if len(due) < SWEEP_BATCH:
            break
    return total
