"""From stored state plus new events to new scores: the domain step the consumer, the sweep
and `kizashi rescore` share. Pure: no I/O."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kizashi.contracts.events import EventEnvelope
from kizashi.contracts.scores import AppliedEvent, ScoresChanged, ScoreSnapshot
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.features import AccountState, features_at
from kizashi.scoring.model import meaningful_change, next_drift_check, score
from kizashi.scoring.store import ScoredAccount, StoredAccount

# Features whose every movement a rule may care about, even when the scores barely move.
WATCHED_FEATURES = (
    "nps_at",
    "csat_at",
    "upsell_intent_at",
    "referral_intent_at",
    "pricing_visits_7d",
    "high_value_visits_7d",
    "cross_sell_clicks_14d",
    "active_users_28d",
    "seats",
    "seat_utilisation",
    "days_since_usage",
    "days_to_renewal",
)
MAX_EVENT_REFS = 20


@dataclass
class Outcome:
    scored: ScoredAccount
    change: ScoresChanged | None


def _watched_moved(before: dict | None, after: dict) -> bool:
    if before is None:
        return True
    for name in WATCHED_FEATURES:
        old, new = before.get(name), after.get(name)
        if (old is None) != (new is None):
            return True
        if old is not None and new is not None:
            # Whole days for the day counters; a hair's breadth elsewhere.
            precision = 0 if name.startswith("days_") else 3
            if round(old, precision) != round(new, precision):
                return True
    return False


def rescore(
    stored: StoredAccount,
    events: Sequence[EventEnvelope],
    *,
    config: ScoringConfig,
    now: datetime,
    cause: str = "events",
) -> Outcome:
    state = AccountState.from_json(stored.state)
    for event in events:
        state.apply(event)  # type: ignore[arg-type]
    facts = state.facts(stored.account_id)
    features = features_at(state, facts, now)
    result = score(features, facts, config, now)
    before = (
        ScoreSnapshot(
            cs=stored.scores["cs"],
            op=stored.scores["op"],
            segment=stored.scores["segment"],
            priority=stored.scores["priority"],
        )
        if stored.scores
        else None
    )
    scored = ScoredAccount(
        account_id=stored.account_id,
        facts=facts.model_dump(mode="json"),
        state=state.to_json(),
        cs=result.snapshot.cs,
        op=result.snapshot.op,
        segment=result.snapshot.segment,
        priority=result.snapshot.priority,
        breakdown=[component.model_dump(mode="json") for component in result.breakdown],
        features=features,
        config_version=config.version,
        computed_at=now,
        next_check_at=next_drift_check(state, now, config),
    )
    moved = meaningful_change(before, result.snapshot, config) or _watched_moved(
        stored.scores["features"] if stored.scores else None, features
    )
    if not moved:
        return Outcome(scored, None)
    change = ScoresChanged(
        account_id=stored.account_id,
        computed_at=now,
        config_version=config.version,
        before=before,
        after=result.snapshot,
        breakdown=result.breakdown,
        account=facts,
        features=features,
        events=[
            AppliedEvent(
                event_id=e.event_id,
                type=e.type,  # type: ignore[attr-defined]
                occurred_at=e.occurred_at or now,
                received_at=e.received_at,
            )
            for e in list(events)[:MAX_EVENT_REFS]
        ],
        event_count=len(events),
        cause=cause,  # type: ignore[arg-type]
    )
    return Outcome(scored, change)
