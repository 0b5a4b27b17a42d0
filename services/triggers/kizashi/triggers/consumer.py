"""The triggers consumer: `scores.changed` in, signals stored and published.

Outcomes the changes carry (from account_updates) are stored with them.

Rules see every applied input event through `scores.changed`, which scoring publishes for
each account an event moved, after the account's facts and features include it. So a rule
never sees a survey before the account's name or owner that arrived with it.
"""

from collections import defaultdict
from datetime import datetime

import asyncpg
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.runtime import tracing
from kizashi.runtime.collector import collection_paused
from kizashi.runtime.consumer import PermanentRecordError, Rejected
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import corrections, repository
from kizashi.triggers import outcome as out
from kizashi.triggers.change import RuleInput
from kizashi.triggers.decide import AccountMemory, decide
from kizashi.triggers.repository import corrections as corrections_sql
from kizashi.triggers.returns import count_returned, return_risen
from kizashi.triggers.state import TriggersState

Change = tuple[RuleInput, bytes, ConsumerRecord]


def decode(records: list[ConsumerRecord]) -> tuple[list[Change], Rejected]:
    """Each valid change (the fields the rules read, kizashi.triggers.change) with its JSON
    text, which becomes the account's `latest` as it is, and its record (whose headers carry
    its trace context)."""
    changes, rejected = [], []
    for record in records:
        try:
            changes.append((RuleInput.model_validate_json(record.value), record.value, record))
        except (ValidationError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
    return changes, rejected


async def handle_changes(service: TriggersState, records: list[ConsumerRecord]) -> Rejected:
    # No cyclic collection while the batch's objects (decoded changes, states, readings) are
    # alive: the collector would walk them all, again and again, to free nothing
    # (kizashi.runtime.collector; about a fifth of this consumer's time under load).
    with collection_paused():
        return await _handle(service, records)


async def _handle(service: TriggersState, records: list[ConsumerRecord]) -> Rejected:
    changes, rejected = decode(records)
    if not changes:
        return rejected
    by_account: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_account[change[0].account_id].append(change)
    # Tracing on only: a span per new signal, the child of its change's context, ended once
    # the signal is committed; the signal goes on under it.
    spans = tracing.record_spans("triggers signal", records)
    async with tracing.closing(spans), raw_transaction(service.engine) as connection:
        rows = await repository.lock_accounts(conn=connection, account_ids=by_account)
        states = await repository.load_rule_states(conn=connection, account_ids=by_account)
        outcome = out.Outcome(loaded_states=states)
        pending: list[corrections.Pending] = []
        for account_id, account_changes in by_account.items():
            memory = AccountMemory(**rows.get(account_id, {}), states=states.get(account_id, {}))
            for change, text, record in account_changes:
                # Time is the change's own, so a replay decides exactly as the first pass did.
                decision = decide(
                    change, memory, service.rules, now=change.computed_at, message=text
                )
                outcome.add(account_id, decision)
                # Late events may show a sent signal did not hold (issue #20).
                retractions, reset, waiting = corrections.check(
                    change, memory.states, service.rules
                )
                pending.extend(waiting)
                if retractions:
                    outcome.retractions.extend(retractions)
                    memory.states = {**memory.states, **reset}
                    memory.schedule(service.rules, change.computed_at)
                if spans is not None:
                    parent = tracing.record_context(record)
                    for signal in decision.signals:
                        outcome.contexts[signal.signal_id] = spans.start(
                            parent, signal_id=signal.signal_id, rule=signal.rule
                        )
            outcome.memories[account_id] = memory
        latest = max(c.computed_at for c, _, _ in changes)
        if pending:  # firings to decide on the figures they kept: one read for the batch
            await _settle(connection, service, outcome, pending, latest)
        # Recycled `no_need` accounts whose OP rose enough come back (one statement).
        back, reasons = await return_risen(connection, service, [c for c, _, _ in changes], latest)
        outcome.signals.extend(back)
        await out.record(connection, service, outcome, latest)
        # What happened to the accounts (kizashi.contracts.outcomes), stored once each.
        facts = [(c.account_id, o) for c, _, _ in changes for o in c.outcomes]
        await repository.insert_outcomes(
            conn=connection,
            account_ids=[account for account, _ in facts],
            outcomes=[fact for _, fact in facts],
            source="crm",
        )
    out.count(outcome)
    count_returned(reasons)
    return rejected


async def _settle(
    connection: asyncpg.Connection,
    service: TriggersState,
    outcome: out.Outcome,
    pending: list[corrections.Pending],
    now: datetime,
) -> None:
    """Retract the pending firings (`usage_drop`) their kept figures show did not hold."""
    kept = await corrections_sql.fired_measures(
        conn=connection, signal_ids=[p.signal_id for p in pending]
    )
    for retraction in corrections.settle(pending, kept):
        memory = outcome.memories[retraction.account_id]
        state = memory.states.get(retraction.rule)
        if state is None or state.last_fired_at is None:
            continue  # retracted by an earlier change of the batch
        outcome.retractions.append(retraction)
        memory.states = {**memory.states, retraction.rule: corrections.void(state)}
        memory.schedule(service.rules, now)
