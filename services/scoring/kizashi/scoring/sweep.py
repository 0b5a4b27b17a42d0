"""The periodic re-evaluation: time alone lowers scores (decay, silence, the renewal calendar).

It reads only the accounts whose `next_check_at` has come, so its cost follows the accounts
whose scores can have moved, not the number of idle ones. Each batch locks its accounts with
SKIP LOCKED in the transaction that re-scores them, so replicas sweeping at once split the
due accounts: each is re-scored once. `kizashi rescore` reuses it to
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


async def sweep_batch(service: ScoringState, now: datetime) -> tuple[int, int]:
    """One batch of due accounts, locked (SKIP LOCKED), re-scored and saved in one
    transaction; returns (accounts re-scored, accounts locked)."""

    async def attempt() -> tuple[int, int, list]:
        async with raw_transaction(service.engine) as connection:
            due, locked = await repository.lock_due_accounts(
                conn=connection, now=now, limit=SWEEP_BATCH
            )
            if not due:
                return 0, locked, []
            stored = await repository.lock_accounts(conn=connection, account_ids=due)
            known = {i: s for i, s in stored.items() if s.state is not None}
            outcomes = await rescore_and_write(
                service, connection, known, {}, cause="sweep", now=now
            )
        return len(outcomes), locked, outcomes

    swept, locked, outcomes = await retry_transient(attempt)
    record_outcomes(outcomes, "sweep")
    return swept, locked


async def sweep_once(service: ScoringState, now: datetime | None = None) -> int:
    """Re-score every account that is due, a batch at a time; returns how many. Accounts
    another replica's sweep holds are left to it."""
    now = now or datetime.now(UTC)
    total = 0
    for _ in range(MAX_SWEEP_BATCHES):
        swept, locked = await sweep_batch(service, now)
        total += swept
        if locked < SWEEP_BATCH:
            break
    return total
