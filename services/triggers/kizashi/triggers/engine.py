"""Evaluation of the rule catalogue for one account: pure and deterministic, no I/O.

Each rule (kizashi.triggers.rules.<name>) reads the account's features and scores into a
level: "on" (past the fire level), "off" (past the re-arm level), "band" (in between: nothing
changes, which is what makes noise around a threshold harmless) or "unknown" (data missing:
the state is kept as is). The state machine here, common to all rules, turns levels into
firings with cooldown, hysteresis, episodes and the daily cap.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from kizashi.contracts.scores import ObservationFact, ScoreSnapshot
from kizashi.triggers.rules import Context, Reading, RuleBook, RuleConfig
from kizashi.triggers.rules.base import INSUFFICIENT

# Fixed forever: changing it would change every signal id, and replays would alert twice.
SIGNAL_NAMESPACE = uuid.UUID("6b1f0c2e-4f7a-5d1e-9c3b-2a8e7d4f6a10")

_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass
class RuleState:
    armed: bool = True
    episode: int = 0
    last_fired_at: datetime | None = None
    # When the condition last became true; for the survey rules (detractor, upsell_intent),
    # the time of the answer behind the current episode.
    condition_since: datetime | None = None
    cleared_since: datetime | None = None
    last_value: float | None = None

    def but(self, **changes: Any) -> RuleState:
        """A copy with `changes`: states are replaced, never changed in place. Every rule
        steps on every change, and dataclasses.replace re-reads the fields each time (4 µs,
        against under 1 µs here)."""
        if not _RULE_STATE_FIELDS.issuperset(changes):
            raise TypeError(f"RuleState has no {sorted(changes.keys() - _RULE_STATE_FIELDS)}")
        new = object.__new__(RuleState)
        new.__dict__.update(self.__dict__, **changes)
        return new


_RULE_STATE_FIELDS = frozenset(RuleState.__dataclass_fields__)


@dataclass(frozen=True)
class Firing:
    rule: str
    kind: Literal["opportunity", "churn_risk"]
    priority: Literal["high", "medium", "low"]
    episode: str
    signal_id: str
    reasons: list[str]
    suggested_play: str
    headline: str = ""


@dataclass(frozen=True)
class Evaluation:
    firings: list[Firing]
    states: dict[str, RuleState]
    cleared: list[str]
    suppressed: list[str]
    # How many of the firings count toward the daily cap.
    capped: int = 0


def signal_id_for(account_id: str, rule: str, episode: str) -> str:
    return str(uuid.uuid5(SIGNAL_NAMESPACE, f"{account_id}\x1f{rule}\x1f{episode}"))


def evaluate(
    *,
    account_id: str,
    features: dict[str, float | None],
    scores: ScoreSnapshot,
    scores_before: ScoreSnapshot | None,
    cs_history: list[tuple[datetime, float]],
    states: dict[str, RuleState],
    fired_today: int,
    rules: RuleBook,
    now: datetime,
    only: set[str] | None = None,
    observations: Sequence[ObservationFact] = (),
    phase: int = 0,
    history_arriving: bool = False,
) -> Evaluation:
    now = _aware(now)
    ctx = Context(
        features,
        scores,
        scores_before,
        [(_aware(t), v) for t, v in cs_history],
        now,
        tuple(observations),
        phase,
    )
    new_states: dict[str, RuleState] = {}
    candidates: list[tuple[tuple[int, int, int], str, RuleConfig, Reading]] = []
    insufficient = scores.segment == INSUFFICIENT
    for order, (name, cfg) in enumerate(rules.enabled()):
        if only is not None and name not in only:
            continue
        if insufficient and cfg.READS_SCORES:
            continue  # its state stays as it was: no reading on scores of too little evidence
        if history_arriving and cfg.HELD_WHILE_HISTORY_ARRIVES:
            continue  # likewise: the history so far is not the account's present
        reading = cfg.read(ctx)
        state, ready = _step(cfg, reading, _aware_state(states.get(name)), now)
        new_states[name] = state
        if ready:
            rank = (_PRIORITY_RANK[_priority(cfg, scores)], cfg.kind != "churn_risk", order)
            candidates.append((rank, name, cfg, reading))

    # Under the cap the most urgent go first; the rest stay armed and fire on a later day.
    # Rules on reps' observations are neither held by the cap nor counted toward it.
    cap = rules.daily_cap_per_account
    room = len(candidates) if cap is None else max(0, cap - fired_today)
    firings: list[Firing] = []
    suppressed: list[str] = []
    capped = 0
    for _, name, cfg, reading in sorted(candidates, key=lambda c: c[0]):
        if cfg.CAPPED:
            if capped >= room:
                suppressed.append(name)
                continue
            capped += 1
        state = new_states[name]
        n = state.episode + 1
        episode = f"{name}:{_iso(reading.answered_at) if reading.answered_at else n}"
        new_states[name] = state.but(armed=False, episode=n, last_fired_at=now)
        firings.append(
            Firing(
                rule=name,
                kind=cfg.kind,
                priority=_priority(cfg, scores),
                episode=episode,
                signal_id=signal_id_for(account_id, name, episode),
                reasons=list(reading.reasons),
                suggested_play=cfg.suggested_play,
                headline=cfg.headline(reading, ctx),
            )
        )

    cleared = [n for n, st in new_states.items() if _cleared_long_enough(rules.get(n), st, now)]
    return Evaluation(
        firings=firings, states=new_states, cleared=cleared, suppressed=suppressed, capped=capped
    )


# --------------------------------------------------------------------------- state machine


def _step(
    cfg: RuleConfig, reading: Reading, state: RuleState, now: datetime
) -> tuple[RuleState, bool]:
    """The rule's new state (before any firing) and whether it is ready to fire."""
    if reading.level == "unknown":
        return state, False  # unchanged (states are never changed in place)
    if reading.level == "band":
        return state.but(last_value=reading.value), False
    if reading.level == "off":
        cleared = {"cleared_since": state.cleared_since or now, "last_value": reading.value}
        return state.but(armed=True, condition_since=None, **cleared), False

    armed, since = state.armed or reading.entered, state.condition_since or now
    if reading.answered_at is not None:
        since = state.condition_since
        if since is None or reading.answered_at > since:
            armed, since = True, reading.answered_at
    new = state.but(
        armed=armed, condition_since=since, cleared_since=None, last_value=reading.value
    )
    cooling = state.last_fired_at is not None and now - state.last_fired_at < cfg.cooldown
    max_age: timedelta | None = rule_option(cfg, "max_age")
    stale = bool(max_age and reading.answered_at and now - reading.answered_at > max_age)
    return new, armed and not cooling and not stale


def resolvable(states: dict[str, RuleState], rules: RuleBook, now: datetime) -> list[str]:
    """The churn-risk rules whose condition has been clear for their auto_resolve_after."""
    now = _aware(now)
    return [
        name
        for name, cfg in rules.enabled()
        if name in states and _cleared_long_enough(cfg, _aware_state(states[name]), now)
    ]


def _cleared_long_enough(cfg: RuleConfig, state: RuleState, now: datetime) -> bool:
    after = rule_option(cfg, "auto_resolve_after")
    return (
        cfg.kind == "churn_risk"
        and after is not None
        and state.last_fired_at is not None
        and state.cleared_since is not None
        and now - state.cleared_since >= after
    )


def rule_option(cfg: RuleConfig, name: str) -> Any:
    """A setting only some rules have, or None. A pydantic model keeps its fields in its
    __dict__; getattr on a missing one goes through BaseModel.__getattr__ and an exception
    (2.6 µs), for every rule on every change."""
    return cfg.__dict__.get(name)


def _priority(cfg: RuleConfig, scores: ScoreSnapshot) -> Literal["high", "medium", "low"]:
    return scores.priority if cfg.priority == "account" else cfg.priority


# --------------------------------------------------------------------------- times


# A rule's state before it ever stepped; shared, as states are replaced, never changed in place.
FRESH_STATE = RuleState()


def _aware_state(state: RuleState | None) -> RuleState:
    if state is None:
        return FRESH_STATE
    fired, since, cleared = state.last_fired_at, state.condition_since, state.cleared_since
    if (
        (fired is None or fired.tzinfo is not None)
        and (since is None or since.tzinfo is not None)
        and (cleared is None or cleared.tzinfo is not None)
    ):
        # As read from PostgreSQL, nothing to convert: the same state (every rule's state on
        # every change passes here).
        return state
    times = {"last_fired_at": fired, "condition_since": since, "cleared_since": cleared}
    return state.but(**{k: _aware(v) for k, v in times.items() if v is not None})


def _aware(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC so that comparisons never raise mid-batch.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
