"""The periodic sweep of the time-driven rules (rules.SWEEP_RULES: silence, the renewal
calendar, the decay side of usage_drop), of auto-resolution and of the recycle list's due
entries (kizashi.triggers.returns).

No rule waits for an event to notice that nothing happened: each account carries
`next_sweep_at`, the first time the clock alone can change one of those rules (schedule.py),
and the sweep reads only the accounts due, a batch per transaction, so its cost follows the
accounts that can fire, not the idle ones.
"""

from datetime import UTC, datetime

from kizashi.runtime.db import raw_transaction, retry_transient
from kizashi.triggers import outcome as out
from kizashi.triggers import repository
from kizashi.triggers.decide import AccountMemory, sweep_decide
from kizashi.triggers.lifecycle import reopen_due_snoozes
from kizashi.triggers.metrics import SWEPT_ACCOUNTS
from kizashi.triggers.returns import return_due
from kizashi.triggers.state import TriggersState

SWEEP_BATCH = 500
# Bounds one sweep's work; whatever is left is due again at the next interval.
MAX_SWEEP_BATCHES = 40


async def sweep_batch(service: TriggersState, now: datetime) -> int:
    """One batch of due accounts, in one transaction; returns how many were swept."""

    async def attempt() -> tuple[int, out.Outcome]:
        async with raw_transaction(service.engine) as connection:
            rows = await repository.lock_due_accounts(conn=connection, now=now, limit=SWEEP_BATCH)
            if not rows:
                return 0, out.Outcome()
            states = await repository.load_rule_states(conn=connection, account_ids=rows)
            outcome = out.Outcome(loaded_states=states)
            for account_id, row in rows.items():
                memory = AccountMemory(**row, states=states.get(account_id, {}))
                outcome.add(account_id, sweep_decide(memory, service.rules, now=now))
                outcome.memories[account_id] = memory
            await out.record(connection, service, outcome, now)
        return len(rows), outcome

    swept, outcome = await retry_transient(attempt)
    out.count(outcome)
    SWEPT_ACCOUNTS.inc(swept)
    return swept


async def sweep_once(service: TriggersState, now: datetime | None = None) -> int:
    """Re-open the snoozes whose time is up, sweep every due account, then bring back the
    recycled accounts whose time has come (kizashi.triggers.returns); returns how many
    accounts were swept."""
    now = now or datetime.now(UTC)
    async with raw_transaction(service.engine) as connection:
        await reopen_due_snoozes(connection, now)
    total = 0
    for _ in range(MAX_SWEEP_BATCHES):
        swept = await sweep_batch(service, now)
        total += swept
        if swept < SWEEP_BATCH:
            break
    # Last: whatever goes wrong with a recycle entry never holds up the rules' sweep.
    await return_due(service, now)
    return total
