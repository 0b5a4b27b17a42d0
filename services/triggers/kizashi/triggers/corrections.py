"""Corrections (issue #20): late events that show a sent signal's condition did not hold.

Scoring carries, on each `scores.changed`, the batch's events that arrived late but within
their source's watermark, as spans of occurrence times (`late`,
kizashi.contracts.scores.LateEvents; a span has an event within an hour of every instant it
covers). After the rules have stepped on a change, `check` asks each correctable rule whose
last firing is remembered in its state whether the late events fell inside what its
condition covered:

- `inactivity` fired at F with a threshold of T days said "no product usage in (F - T, F]":
  any late usage span meeting that interval shows it did not hold. Decided from the span
  alone.
- `usage_drop` fired at F said "the 7-day usage rate was under `threshold` of the 28-day
  rate at F". Late usage before F would have added to both counters as of F; with the
  counters the signal kept when it fired (`measures`, MEASURED) the trend as of F is
  recomputed with the least the late usage could have added to the 7-day counter and the most
  it could have added to the 28-day one. Only when even that trend is at or over the
  threshold did the signal not hold. The kept counters take one read per batch, for the
  signals concerned only (`Pending`).

A signal that did not hold is retracted (kizashi.triggers.outcome, one statement per batch)
and its owner gets one "Correction: …". Pure: no I/O, no query per event. The signal's id
comes from the rule state (its episode), not a read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kizashi.contracts.decay import MEAN_LIFE_7D_S, MEAN_LIFE_28D_S
from kizashi.contracts.scores import LateEvents
from kizashi.triggers.change import RuleInput
from kizashi.triggers.engine import RuleState, signal_id_for
from kizashi.triggers.rules import RuleBook

USAGE = "product_usage"
# The features a rule's firing keeps with its signal (signals.measures), for the rules whose
# correction re-reads them.
MEASURED: dict[str, tuple[str, ...]] = {"usage_drop": ("usage_7d", "usage_28d")}


@dataclass(frozen=True)
class Retraction:
    account_id: str
    rule: str
    signal_id: str
    fired_at: datetime
    # Plain text: "product usage on 2026-11-30 arrived late (12 events)".
    reason: str


@dataclass(frozen=True)
class Pending:
    """A firing late usage may have cancelled, to be decided on the figures it kept."""

    account_id: str
    rule: str
    signal_id: str
    fired_at: datetime
    threshold: float
    late: tuple[LateEvents, ...]


def _events(count: int) -> str:
    return "1 event" if count == 1 else f"{count} events"


def inactivity_did_not_hold(
    fired_at: datetime, threshold_days: float, late: Sequence[LateEvents]
) -> str | None:
    """Why an `inactivity` fired at `fired_at` did not hold, or None when, as far as the late
    events tell, it did: some late product usage occurred in (fired_at - threshold, fired_at].
    """
    start = fired_at - timedelta(days=threshold_days)
    hits = [s for s in late if s.type == USAGE and s.first_at <= fired_at and s.last_at > start]
    if not hits:
        return None
    # The latest late usage at or before the firing (a span reaching past it had usage within
    # the hour before: the firing's day is the one to name).
    latest = max(min(s.last_at, fired_at) for s in hits).astimezone(UTC)
    count = sum(s.count for s in hits)
    return f"product usage on {latest:%Y-%m-%d} arrived late ({_events(count)})"


def usage_drop_did_not_hold(
    fired_at: datetime,
    threshold: float,
    measures: dict,
    late: Sequence[LateEvents],
) -> str | None:
    """Why a `usage_drop` fired at `fired_at` did not hold, or None when it may have: the
    7-day/28-day trend as of the firing, counting the late usage before it at its least
    (for the 7-day counter) and most (for the 28-day one), is still under the threshold."""
    u7, u28 = measures.get("usage_7d"), measures.get("usage_28d")
    if u7 is None or u28 is None:
        return None
    spans = [s for s in late if s.type == USAGE and s.first_at <= fired_at and s.quantity]
    if not spans:
        return None
    f = fired_at.timestamp()
    # Every event of a span that ended before the firing is at least this recent.
    least_7d = sum(
        s.quantity * math.exp(-(f - s.first_at.timestamp()) / MEAN_LIFE_7D_S)  # type: ignore[operator]
        for s in spans
        if s.last_at <= fired_at
    )
    # And no event at or before the firing is more recent than the span's end (or the firing).
    most_28d = sum(
        s.quantity * math.exp(-(f - min(s.last_at, fired_at).timestamp()) / MEAN_LIFE_28D_S)  # type: ignore[operator]
        for s in spans
    )
    rate_28d = (u28 + most_28d) / 28.0
    if rate_28d <= 0:
        return None
    trend = ((u7 + least_7d) / 7.0) / rate_28d
    if trend < threshold:
        return None
    latest = max(min(s.last_at, fired_at) for s in spans).astimezone(UTC)
    count = sum(s.count for s in spans)
    return (
        f"product usage up to {latest:%Y-%m-%d} arrived late ({_events(count)}): usage in the "
        f"7 days before it fired was at {math.floor(trend * 100)}% or more of the 28-day "
        f"baseline rate, not under {math.floor(threshold * 100)}%"
    )


def check(
    change: RuleInput, states: dict[str, RuleState], rules: RuleBook
) -> tuple[list[Retraction], dict[str, RuleState], list[Pending]]:
    """The signals the change's late events retract; the rule states to keep for them (a
    retracted firing is void, so its rule is armed again with no cooldown running, and a new
    firing is a new episode, with a new id); and the firings to decide on their kept figures
    (`settle`)."""
    if not change.late:
        return [], {}, []
    retractions, reset, pending = [], {}, []
    cfg = rules.get("inactivity")
    state = states.get("inactivity")
    if cfg.enabled and state is not None and state.last_fired_at is not None:
        fired_at = _aware(state.last_fired_at)
        why = inactivity_did_not_hold(fired_at, cfg.threshold, change.late)  # type: ignore[attr-defined]
        if why is not None:
            retractions.append(_retraction(change.account_id, "inactivity", state, why))
            reset["inactivity"] = void(state)
    cfg = rules.get("usage_drop")
    state = states.get("usage_drop")
    if cfg.enabled and state is not None and state.last_fired_at is not None:
        fired_at = _aware(state.last_fired_at)
        late = tuple(s for s in change.late if s.type == USAGE and s.first_at <= fired_at)
        if late:
            pending.append(
                Pending(
                    account_id=change.account_id,
                    rule="usage_drop",
                    signal_id=_signal_id(change.account_id, "usage_drop", state),
                    fired_at=fired_at,
                    threshold=cfg.threshold,  # type: ignore[attr-defined]
                    late=late,
                )
            )
    return retractions, reset, pending


def settle(pending: Sequence[Pending], measures: dict[str, dict]) -> list[Retraction]:
    """The pending firings that did not hold, given the figures each kept when it fired (a
    signal with none, or already retracted, is not in `measures`)."""
    out = []
    for item in pending:
        kept = measures.get(item.signal_id)
        if kept is None:
            continue
        why = usage_drop_did_not_hold(item.fired_at, item.threshold, kept, item.late)
        if why is not None:
            out.append(Retraction(item.account_id, item.rule, item.signal_id, item.fired_at, why))
    return out


def void(state: RuleState) -> RuleState:
    """The rule's state once its last firing is retracted."""
    return state.but(armed=True, last_fired_at=None, condition_since=None, cleared_since=None)


def _signal_id(account_id: str, rule: str, state: RuleState) -> str:
    return signal_id_for(account_id, rule, f"{rule}:{state.episode}")


def _retraction(account_id: str, rule: str, state: RuleState, why: str) -> Retraction:
    fired_at = _aware(state.last_fired_at)  # type: ignore[arg-type]
    return Retraction(account_id, rule, _signal_id(account_id, rule, state), fired_at, why)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
