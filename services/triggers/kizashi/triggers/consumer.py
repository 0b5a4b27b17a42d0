"""The triggers consumer: `scores.changed` in, signals stored and published.

Rules see every applied input event through `scores.changed`, which scoring publishes for
each account an event moved, after the account's facts and features include it. So a rule
never sees a survey before the account's name or owner that arrived with it.
"""

from collections import defaultdict

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.scores import ScoresChanged
from kizashi.runtime.consumer import PermanentRecordError, Rejected
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import outcome as out
from kizashi.triggers import repository
from kizashi.triggers.decide import AccountMemory, decide
from kizashi.triggers.state import TriggersState


def decode(records: list[ConsumerRecord]) -> tuple[list[tuple[ScoresChanged, bytes]], Rejected]:
    """Each valid change with its JSON text, which becomes the account's `latest` as it is."""
    changes, rejected = [], []
    for record in records:
        try:
            changes.append((ScoresChanged.model_validate_json(record.value), record.value))
        except (ValidationError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
    return changes, rejected


async def handle_changes(service: TriggersState, records: list[ConsumerRecord]) -> Rejected:
    changes, rejected = decode(records)
    if not changes:
        return rejected
    by_account: dict[str, list[tuple[ScoresChanged, bytes]]] = defaultdict(list)
    for change, text in changes:
        by_account[change.account_id].append((change, text))
    async with raw_transaction(service.engine) as connection:
        rows = await repository.lock_accounts(conn=connection, account_ids=by_account)
        states = await repository.load_rule_states(conn=connection, account_ids=by_account)
        outcome = out.Outcome(loaded_states=states)
        for account_id, account_changes in by_account.items():
            memory = AccountMemory(**rows.get(account_id, {}), states=states.get(account_id, {}))
            for change, text in account_changes:
                # Time is the change's own, so a replay decides exactly as the first pass did.
                decision = decide(
                    change, memory, service.rules, now=change.computed_at, message=text
                )
                outcome.add(account_id, decision)
            outcome.memories[account_id] = memory
        await out.record(connection, service, outcome, max(c.computed_at for c, _ in changes))
    out.count(outcome)
    return rejected
