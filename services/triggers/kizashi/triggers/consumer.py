"""The triggers consumer: `scores.changed` in, signals stored and published.

Rules see every applied input event through `scores.changed`, which scoring publishes for
each account an event moved, after the account's facts and features include it. So a rule
never sees a survey before the account's name or owner that arrived with it.
"""

from collections import defaultdict

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.topics import SIGNAL_TOPICS
from kizashi.kit.db import raw_transaction
from kizashi.kit.kafka import OutgoingRecord, PermanentRecordError, Rejected, encode
from kizashi.triggers import store
from kizashi.triggers.decide import AccountMemory, decide
from kizashi.triggers.metrics import SIGNALS_FIRED, SIGNALS_RESOLVED, SIGNALS_SUPPRESSED
from kizashi.triggers.service import TriggersService


def decode(records: list[ConsumerRecord]) -> tuple[list[ScoresChanged], Rejected]:
    changes, rejected = [], []
    for record in records:
        try:
            changes.append(ScoresChanged.model_validate_json(record.value))
        except (ValidationError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
    return changes, rejected


async def handle_changes(service: TriggersService, records: list[ConsumerRecord]) -> Rejected:
    changes, rejected = decode(records)
    if not changes:
        return rejected
    by_account: dict[str, list[ScoresChanged]] = defaultdict(list)
    for change in changes:
        by_account[change.account_id].append(change)
    async with raw_transaction(service.engine) as connection:
        rows = await store.lock_accounts(connection, by_account)
        states = await store.load_rule_states(connection, by_account)
        signals, cleared, suppressed = [], [], []
        memories: dict[str, AccountMemory] = {}
        for account_id, account_changes in by_account.items():
            memory = AccountMemory(**rows.get(account_id, {}), states=states.get(account_id, {}))
            for change in account_changes:
                # Time is the change's own, so a replay decides exactly as the first pass did.
                decision = decide(change, memory, service.rules, now=change.computed_at)
                signals.extend(decision.signals)
                cleared.extend((account_id, rule) for rule in decision.evaluation.cleared)
                suppressed.extend(decision.evaluation.suppressed)
            memories[account_id] = memory
        await store.save_accounts(connection, {a: m.as_row() for a, m in memories.items()})
        await store.save_rule_states(connection, {a: m.states for a, m in memories.items()})
        new_ids = await store.insert_signals(connection, signals)
        fresh = [s for s in signals if s.signal_id in new_ids]
        resolved = await store.resolve_cleared(
            connection, cleared, max(c.computed_at for c in changes)
        )
        await service.producer.send_all(
            [OutgoingRecord(SIGNAL_TOPICS[s.kind], s.account_id, encode(s)) for s in fresh]
        )
    for signal in fresh:
        SIGNALS_FIRED.labels(signal.kind, signal.rule).inc()
    for rule in suppressed:
        SIGNALS_SUPPRESSED.labels(rule).inc()
    SIGNALS_RESOLVED.inc(len(resolved))
    return rejected
