"""What the consumer and the sweep do with their decisions, in the caller's transaction:
save the accounts' memory and rule states, insert the new signals, auto-resolve cleared
churn risks, and publish the new signals before the commit (a failed send rolls it all back,
and a replay after a crash re-sends the same deterministic ids, which downstream dedupes)."""

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kizashi.contracts.rules import RULE_KINDS
from kizashi.contracts.signals import SignalBase, signal_adapter
from kizashi.contracts.topics import SIGNAL_TOPICS
from kizashi.runtime.kafka import OutgoingRecord, encode
from kizashi.triggers import repository
from kizashi.triggers.corrections import Retraction
from kizashi.triggers.decide import AccountMemory, Decision
from kizashi.triggers.engine import RuleState
from kizashi.triggers.metrics import (
    SIGNALS_FIRED,
    SIGNALS_RESOLVED,
    SIGNALS_RETRACTED,
    SIGNALS_SUPPRESSED,
)
from kizashi.triggers.repository import corrections
from kizashi.triggers.state import TriggersState

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    memories: dict[str, AccountMemory] = field(default_factory=dict)
    # The rule states as read at the start of the transaction: only those that changed are
    # written back (most rules' states stay as they were on most changes).
    loaded_states: dict[str, dict[str, RuleState]] = field(default_factory=dict)
    signals: list[SignalBase] = field(default_factory=list)
    measures: dict[str, dict] = field(default_factory=dict)
    cleared: list[tuple[str, str]] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    # signal id → the trace context it goes on under (tracing on only; kizashi.runtime.tracing).
    contexts: dict[str, Any] = field(default_factory=dict)
    # Sent signals late events showed did not hold (kizashi.triggers.corrections).
    retractions: list[Retraction] = field(default_factory=list)
    # Filled by `record`.
    fresh: list[SignalBase] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    retracted: list[SignalBase] = field(default_factory=list)

    def changed_states(self) -> dict[str, dict[str, RuleState]]:
        changed = {}
        for account_id, memory in self.memories.items():
            loaded = self.loaded_states.get(account_id, {})
            # States are replaced, never changed in place: the same object is unchanged, and
            # only a new one is compared field by field.
            states = {
                r: s
                for r, s in memory.states.items()
                if (was := loaded.get(r)) is not s and was != s
            }
            if states:
                changed[account_id] = states
        return changed

    def add(self, account_id: str, decision: Decision) -> None:
        self.signals.extend(decision.signals)
        self.measures.update(decision.measures)
        self.cleared.extend((account_id, rule) for rule in decision.evaluation.cleared)
        self.suppressed.extend(decision.evaluation.suppressed)


async def record(
    connection: asyncpg.Connection, service: TriggersState, outcome: Outcome, now
) -> Outcome:
    memories = outcome.memories
    accounts = {a: m.as_row() for a, m in memories.items()}
    await repository.save_accounts(conn=connection, accounts=accounts)
    await repository.save_rule_states(conn=connection, states=outcome.changed_states())
    new_ids = await repository.insert_signals(
        conn=connection, signals=outcome.signals, measures=outcome.measures
    )
    outcome.fresh = [s for s in outcome.signals if s.signal_id in new_ids]
    outcome.resolved = await repository.resolve_cleared(
        conn=connection, cleared=outcome.cleared, now=now
    )
    retracted = await corrections.retract(
        conn=connection,
        signal_ids=[r.signal_id for r in outcome.retractions],
        reasons=[r.reason for r in outcome.retractions],
        now=now,
    )
    outcome.retracted = [signal_adapter.validate_json(payload) for _, payload in retracted]
    await service.producer.send_all(
        [
            OutgoingRecord(
                SIGNAL_TOPICS[s.kind],
                s.account_id,
                encode(s),
                context=outcome.contexts.get(s.signal_id),
            )
            for s in outcome.fresh
        ]
        # The signal again, with `retracted`: the notifier sends its owner one correction.
        # Same topic and key, so it follows the signal itself.
        + [
            OutgoingRecord(SIGNAL_TOPICS[s.kind], s.account_id, encode(s))
            for s in outcome.retracted
        ]
    )
    return outcome


def count(outcome: Outcome) -> None:
    """Metrics, once the transaction has committed."""
    for signal in outcome.fresh:
        SIGNALS_FIRED.labels(signal.kind, signal.rule).inc()
        log.info(
            "signal fired",
            extra={
                "signal_id": signal.signal_id,
                "account_id": signal.account_id,
                "kind": signal.kind,
                "rule": signal.rule,
            },
        )
    for rule in outcome.suppressed:
        SIGNALS_SUPPRESSED.labels(RULE_KINDS[rule], rule).inc()
    SIGNALS_RESOLVED.inc(len(outcome.resolved))
    for signal in outcome.retracted:
        SIGNALS_RETRACTED.labels(signal.rule).inc()
        log.info(
            "signal retracted",
            extra={
                "signal_id": signal.signal_id,
                "account_id": signal.account_id,
                "rule": signal.rule,
            },
        )
