"""From a score change to signals: the rule engine plus the account's memory (CS history,
today's firings). Pure: the consumer, the sweep and `kizashi backtest` share it."""

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import orjson

from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.signals import ChurnRiskSignal, OpportunitySignal, SignalBase
from kizashi.triggers.change import RuleInput
from kizashi.triggers.corrections import MEASURED
from kizashi.triggers.engine import Evaluation, RuleState, evaluate, resolvable
from kizashi.triggers.rules import SWEEP_RULES, RuleBook
from kizashi.triggers.rules.base import INSUFFICIENT
from kizashi.triggers.schedule import features_now, next_sweep_at
from kizashi.triggers.worse import Measures, measures_of

SIGNAL_MODELS: dict[str, type[SignalBase]] = {
    "opportunity": OpportunitySignal,
    "churn_risk": ChurnRiskSignal,
}


@dataclass
class AccountMemory:
    """What triggers remembers of an account between score changes."""

    latest: dict | None = None
    # The consumer's path: the latest change's JSON text as it came off the topic, written to
    # the row as it is (parsing it again took a tenth of the consumer's time under load);
    # `latest` then holds only what scheduling reads (`clock_view`), not the whole change.
    latest_json: bytes | None = None
    cs_history: list = field(default_factory=list)
    fired_day: object = None
    fired_today: int = 0
    states: dict[str, RuleState] = field(default_factory=dict)
    next_sweep_at: datetime | None = None

    def as_row(self) -> dict:
        text = self.latest_json
        return {
            "latest": self.latest if text is None else orjson.Fragment(text),
            "cs_history": self.cs_history,
            "fired_day": self.fired_day,
            "fired_today": self.fired_today,
            "next_sweep_at": self.next_sweep_at,
        }

    def fired_on(self, day: date) -> int:
        """Signals fired for this account on `day` (the daily cap counts them)."""
        return self.fired_today if self.fired_day == day else 0

    def schedule(self, rules: RuleBook, now: datetime, *, history_arriving: bool = False) -> None:
        """Set when the sweep should next look at this account (after every decision)."""
        self.next_sweep_at = next_sweep_at(
            latest=self.latest,
            states=self.states,
            fired_today=self.fired_on(now.date()),
            rules=rules,
            now=now,
            history_arriving=history_arriving,
        )


@dataclass
class Decision:
    signals: list[SignalBase]
    evaluation: Evaluation
    # signal id → the figures its rule read, for the rules a correction re-reads them for
    # (kizashi.triggers.corrections.MEASURED): stored with the signal.
    measures: dict[str, dict] = field(default_factory=dict)
    # Each measure a snoozed signal may watch, as this change shows it (kizashi.triggers.worse).
    watched: Measures | None = None


def decide(
    change: RuleInput | ScoresChanged,
    memory: AccountMemory,
    rules: RuleBook,
    *,
    now: datetime,
    only: set[str] | None = None,
    remember: bool = True,
    message: bytes | None = None,
) -> Decision:
    """Evaluate the rules on one change and update `memory` in place.

    `remember=False` (the sweep) keeps the latest change and the CS history as they were:
    a sweep re-reads the clock, it does not see new scores. `message`, the change's JSON text
    when the caller has it (the consumer), is remembered as it is (`latest_json`), never
    parsed again."""
    day = now.date()
    history = trim_history(memory.cs_history, now)
    arriving = rules.backfill.arriving(change.newest_event_at, now)
    evaluation = evaluate(
        account_id=change.account_id,
        features=change.features,
        scores=change.after,
        scores_before=change.before,
        cs_history=parse_history(history),
        states=memory.states,
        fired_today=memory.fired_on(day),
        rules=rules,
        now=now,
        only=only,
        observations=change.observations,
        phase=change.phase,
        history_arriving=arriving,
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
            headline=firing.headline or None,
            account=change.account,
            scores=change.after,
            scores_before=change.before,
            caused_at=caused_at,
            phase=change.phase,
        )
        for firing in evaluation.firings
    ]
    features = change.features
    measures = {
        firing.signal_id: {name: features.get(name) for name in MEASURED[firing.rule]}
        for firing in evaluation.firings
        if firing.rule in MEASURED
    }
    memory.fired_today = memory.fired_on(day) + evaluation.capped
    memory.fired_day = day
    memory.states = {**memory.states, **evaluation.states}
    if remember:
        # A CS of too little evidence is not history health_drop compares with.
        if change.after.segment != INSUFFICIENT:
            history = [*history, [now.timestamp(), change.after.cs]]
        memory.cs_history = history
        if message is not None:
            memory.latest, memory.latest_json = clock_view(change), message
        else:
            memory.latest, memory.latest_json = change.model_dump(mode="json"), None
    memory.schedule(rules, now, history_arriving=arriving)
    return Decision(
        signals=signals,
        evaluation=evaluation,
        measures=measures,
        watched=measures_of(change.after, change.features),
    )


def sweep_decide(memory: AccountMemory, rules: RuleBook, *, now: datetime) -> Decision:
    """The periodic sweep for one account: the time-driven rules on the latest scores with
    the clock-driven features moved to `now`, plus every churn-risk rule whose condition has
    stayed clear long enough to resolve its signal."""
    assert memory.latest is not None, "only accounts with a scores.changed are swept"
    assert memory.latest_json is None, "the sweep reads the whole change from its row"
    latest = RuleInput.model_validate(memory.latest)
    change = latest.model_copy(
        update={
            "computed_at": now,
            "before": latest.after,
            "features": features_now(memory.latest, now),
            "events": [],
            "newest_event_at": None,  # the sweep is the present, never history arriving
        }
    )
    decision = decide(change, memory, rules, now=now, only=set(SWEEP_RULES), remember=False)
    cleared = resolvable(memory.states, rules, now)
    return replace(decision, evaluation=replace(decision.evaluation, cleared=cleared))


def clock_view(change: RuleInput | ScoresChanged) -> dict:
    """What scheduling reads of the latest change (kizashi.triggers.schedule: `features_now`,
    `renewal_date`, `observations`), in the change's JSON shape."""
    renewal = change.account.renewal_date
    view = {
        "computed_at": change.computed_at,
        "features": change.features,
        "account": {"renewal_date": None if renewal is None else renewal.isoformat()},
    }
    # The due dates reps logged (rules.renewal_timing's sweep edges).
    due = [o.model_dump(mode="json") for o in change.observations if o.kind == "renewal_timing"]
    if due:
        view["observations"] = due
    return view


# The account memory's CS history, as trigger_accounts stores it.


def trim_history(history: list, now: datetime, keep_days: int = 30) -> list:
    horizon = now.timestamp() - keep_days * 86400
    return [point for point in history if point[0] >= horizon]


def parse_history(history: list) -> list[tuple[datetime, float]]:
    return [(datetime.fromtimestamp(t, UTC), cs) for t, cs in history]
