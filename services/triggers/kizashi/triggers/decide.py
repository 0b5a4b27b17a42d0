"""From a score change to signals: the rule engine plus the account's memory (CS history,
today's firings). Pure: the consumer and `kizashi backtest` share it."""

from dataclasses import dataclass, field
from datetime import datetime

from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.signals import ChurnRiskSignal, OpportunitySignal, SignalBase
from kizashi.triggers.engine import Evaluation, RuleState, evaluate
from kizashi.triggers.rules import RuleBook
from kizashi.triggers.store import parse_history, today_count, trim_history

SIGNAL_MODELS: dict[str, type[SignalBase]] = {
    "opportunity": OpportunitySignal,
    "churn_risk": ChurnRiskSignal,
}


@dataclass
class AccountMemory:
    """What triggers remembers of an account between score changes."""

    latest: dict | None = None
    cs_history: list = field(default_factory=list)
    fired_day: object = None
    fired_today: int = 0
    states: dict[str, RuleState] = field(default_factory=dict)

    def as_row(self) -> dict:
        return {
            "latest": self.latest,
            "cs_history": self.cs_history,
            "fired_day": self.fired_day,
            "fired_today": self.fired_today,
        }


@dataclass
class Decision:
    signals: list[SignalBase]
    evaluation: Evaluation


def decide(
    change: ScoresChanged,
    memory: AccountMemory,
    rules: RuleBook,
    *,
    now: datetime,
    only: set[str] | None = None,
) -> Decision:
    """Evaluate the rules on one change and update `memory` in place."""
    day = now.date()
    history = trim_history(memory.cs_history, now)
    evaluation = evaluate(
        account_id=change.account_id,
        features=change.features,
        scores=change.after,
        scores_before=change.before,
        cs_history=parse_history(history),
        states=memory.states,
        fired_today=today_count(memory.as_row() if memory.fired_day else None, day),
        rules=rules,
        now=now,
        only=only,
    )
    caused_at = min(
        (e.received_at for e in change.events if e.received_at is not None), default=None
    )
    signals = [
        SIGNAL_MODELS[firing.kind](
            signal_id=firing.signal_id,
            rule=firing.rule,
            account_id=change.account_id,
            priority=firing.priority,
            episode=firing.episode,
            fired_at=now,
            reasons=firing.reasons,
            suggested_play=firing.suggested_play,
            account=change.account,
            scores=change.after,
            scores_before=change.before,
            caused_at=caused_at,
        )
        for firing in evaluation.firings
    ]
    memory.fired_today = today_count(memory.as_row() if memory.fired_day else None, day) + len(
        signals
    )
    memory.fired_day = day
    memory.cs_history = [*history, [now.timestamp(), change.after.cs]]
    memory.states = {**memory.states, **evaluation.states}
    memory.latest = change.model_dump(mode="json")
    return Decision(signals=signals, evaluation=evaluation)
