"""What the consumer and the sweep do with their decisions, in the caller's transaction:
save the accounts' memory and rule states, insert the new signals, auto-resolve cleared
churn risks, reopen snoozed signals that got worse (kizashi.triggers.worse), and publish the
new and reopened signals before the commit (a failed send rolls it all back,
and a replay after a crash re-sends the same deterministic ids, which downstream dedupes)."""

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kizashi.contracts.rules import RULE_KINDS
from kizashi.contracts.signals import SignalBase, signal_adapter
from kizashi.contracts.topics import SIGNAL_TOPICS
from kizashi.runtime.kafka import OutgoingRecord, encode
from kizashi.triggers import repository, worse
from kizashi.triggers.corrections import Retraction
from kizashi.triggers.decide import AccountMemory, Decision
from kizashi.triggers.engine import RuleState
from kizashi.triggers.metrics import (
    SIGNAL_ACTIONS,
    SIGNALS_FIRED,
    SIGNALS_RESOLVED,
    SIGNALS_RETRACTED,
    SIGNALS_SUPPRESSED,
)
from kizashi.triggers.repository import corrections
from kizashi.triggers.state import TriggersState
from kizashi.triggers.worse import Measures

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
    # Each account's watched measures as its latest decision saw them (kizashi.triggers.worse).
    watched: dict[str, Measures] = field(default_factory=dict)
    # Filled by `record`.
    fresh: list[SignalBase] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    retracted: list[SignalBase] = field(default_factory=list)
    # Snoozed signals reopened because their measure got worse, as published again.
    reopened: list[SignalBase] = field(default_factory=list)

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
        if decision.watched is not None:
            self.watched[account_id] = decision.watched


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
    outcome.reopened = await _reopen_worse(connection, service, outcome, now)
    await service.producer.send_all(
        [
            OutgoingRecord(
                SIGNAL_TOPICS[s.kind],
                s.account_id,
                encode(s),
                context=outcome.contexts.get(s.signal_id),
            )
            for s in (*outcome.fresh, *outcome.reopened)
        ]
        # The signal again, with `retracted`: the notifier sends its owner one correction.
        # Same topic and key, so it follows the signal itself.
        + [
            OutgoingRecord(SIGNAL_TOPICS[s.kind], s.account_id, encode(s))
            for s in outcome.retracted
        ]
    )
    return outcome


async def _reopen_worse(
    connection: asyncpg.Connection, service: TriggersState, outcome: Outcome, now
) -> list[SignalBase]:
    """Snooze unless worse (kizashi.triggers.worse): one read of the batch's accounts'
    snoozed signals whose rule watches a measure (none for almost every batch, through a
    partial index), and one update for those that got worse."""
    watching = worse.watching_rules(service.rules)
    if not watching or not outcome.watched:
        return []
    snoozed = await repository.snoozed_watching(
        conn=connection, account_ids=list(outcome.watched), rules=watching
    )
    reopen = worse.reopenings(snoozed, outcome.watched, service.rules)
    if not reopen:
        return []
    payloads = {row["signal_id"]: row["payload"] for row in snoozed}
    signals = [
        signal_adapter.validate_python(worse.reopened_payload(payloads[r.signal_id], r, now))
        for r in reopen
    ]
    reopened = await repository.reopen_worse(
        conn=connection,
        signals=[(s, r.reason) for s, r in zip(signals, reopen, strict=True)],
        now=now,
    )
    return [s for s in signals if s.signal_id in reopened]


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
    if outcome.reopened:
        SIGNAL_ACTIONS.labels("reopen_worse").inc(len(outcome.reopened))
    for signal in outcome.reopened:
        log.info(
            "signal reopened: worse since snoozed",
            extra={"signal_id": signal.signal_id, "account_id": signal.account_id},
        )
