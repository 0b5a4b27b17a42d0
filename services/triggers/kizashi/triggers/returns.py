"""Recycled accounts coming back (kizashi.triggers.recycle): the sweep returns the entries
whose time has come (timing, no_budget, not_contacted), the consumer the `no_need` entries of
its batch's accounts whose OP has risen enough. Both claim set-based (one statement per batch)
and mark the entries returned in the same transaction that stores and publishes the
returning signals, so an entry comes back once: two replicas' sweeps skip each other's rows,
and a replay makes the same signal id, which is stored once (`insert_signals`)."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import SignalBase
from kizashi.runtime.db import raw_transaction, retry_transient
from kizashi.triggers import outcome as out
from kizashi.triggers import recycle
from kizashi.triggers.change import RuleInput
from kizashi.triggers.metrics import RECYCLE_RETURNED
from kizashi.triggers.repository import recycle as recycle_sql
from kizashi.triggers.state import TriggersState

RETURN_BATCH = 500
MAX_RETURN_BATCHES = 20


def _from_row(row: Mapping[str, Any], now: datetime, service: TriggersState) -> SignalBase:
    """The returning signal of an entry the sweep claimed: the account and scores of its
    latest change, else of the signal it was parked from."""
    latest = orjson.loads(row["latest"]) if row["latest"] else {}
    parked = orjson.loads(row["payload"]) if row["payload"] else {}
    return recycle.return_signal(
        row,
        account=AccountFacts.model_validate(latest.get("account") or parked["account"]),
        scores=ScoreSnapshot.model_validate(latest.get("after") or parked["scores"]),
        phase=latest.get("phase", parked.get("phase")),
        now=now,
        config=service.rules.recycle,
    )


async def return_due_batch(service: TriggersState, now: datetime) -> int:
    """One batch of due entries back as signals, in one transaction; how many."""

    async def attempt() -> tuple[out.Outcome, list[str]]:
        async with raw_transaction(service.engine) as connection:
            rows = await recycle_sql.claim_due(conn=connection, now=now, limit=RETURN_BATCH)
            outcome = out.Outcome(signals=[_from_row(row, now, service) for row in rows])
            if rows:
                await out.record(connection, service, outcome, now)
        return outcome, [row["reason"] for row in rows]

    outcome, reasons = await retry_transient(attempt)
    out.count(outcome)
    count_returned(reasons)
    return len(reasons)


async def return_due(service: TriggersState, now: datetime) -> int:
    """Every due entry (the sweep), in batches; how many came back."""
    total = 0
    for _ in range(MAX_RETURN_BATCHES):
        claimed = await return_due_batch(service, now)
        total += claimed
        if claimed < RETURN_BATCH:
            break
    return total


async def return_risen(
    connection, service: TriggersState, changes: Sequence[RuleInput], now: datetime
) -> tuple[list[SignalBase], list[str]]:
    """The consumer's batch: the `no_need` entries of its accounts whose OP reached their
    target, claimed in one statement (in the consumer's transaction), as signals built from
    each account's last change of the batch; and their reasons, to count once committed."""
    ops: dict[str, float] = {}
    last: dict[str, RuleInput] = {}
    for change in changes:
        account = change.account_id
        ops[account] = max(ops.get(account, change.after.op), change.after.op)
        last[account] = change
    rows = await recycle_sql.claim_op_risen(conn=connection, ops=ops, now=now)
    signals = [
        recycle.return_signal(
            row,
            account=last[row["account_id"]].account,
            scores=last[row["account_id"]].after,
            phase=last[row["account_id"]].phase,
            now=now,
            config=service.rules.recycle,
        )
        for row in rows
    ]
    return signals, [row["reason"] for row in rows]


def count_returned(reasons: Sequence[str]) -> None:
    for reason in reasons:
        RECYCLE_RETURNED.labels(reason).inc()
