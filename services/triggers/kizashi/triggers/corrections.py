"""Corrections (issue #20): late events that show a sent signal's condition did not hold.

Scoring carries, on each `scores.changed`, the batch's events that arrived late but within
their source's watermark, as spans of occurrence times (`late`,
kizashi.contracts.scores.LateEvents; a span has an event within an hour of every instant it
covers). After the rules have stepped on a change, `check` asks each correctable rule whose
last firing is remembered in its state whether the late events fell inside what its
condition covered: for `inactivity` fired at F with a threshold of T days, the condition
said "no product usage in (F - T, F]", so any late usage span meeting that interval shows it
did not hold. Such a signal is retracted (kizashi.triggers.outcome, one statement per batch)
and its owner gets one "Correction: …".

Pure: no I/O, no query per event. Only changes with late events and an account whose rule
fired are looked at; the signal's id comes from the rule state (its episode), not a read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kizashi.contracts.scores import LateEvents
from kizashi.triggers.change import RuleInput
from kizashi.triggers.engine import RuleState, signal_id_for
from kizashi.triggers.rules import RuleBook


@dataclass(frozen=True)
class Retraction:
    account_id: str
    rule: str
    signal_id: str
    fired_at: datetime
    # Plain text: "product usage on 2026-11-30 arrived late (12 events)".
    reason: str


def inactivity_did_not_hold(
    fired_at: datetime, threshold_days: float, late: Sequence[LateEvents]
) -> str | None:
    """Why an `inactivity` fired at `fired_at` did not hold, or None when, as far as the late
    events tell, it did: some late product usage occurred in (fired_at - threshold, fired_at].
    """
    start = fired_at - timedelta(days=threshold_days)
    hits = [
        s
        for s in late
        if s.type == "product_usage" and s.first_at <= fired_at and s.last_at > start
    ]
    if not hits:
        return None
    # The latest late usage at or before the firing (a span reaching past it had usage within
    # the hour before: the firing's day is the one to name).
    latest = max(min(s.last_at, fired_at) for s in hits).astimezone(UTC)
    count = sum(s.count for s in hits)
    events = "1 event" if count == 1 else f"{count} events"
    return f"product usage on {latest:%Y-%m-%d} arrived late ({events})"


def check(
    change: RuleInput, states: dict[str, RuleState], rules: RuleBook
) -> tuple[list[Retraction], dict[str, RuleState]]:
    """The signals the change's late events retract, and the rule states to keep for them:
    a retracted firing is void, so its rule is armed again with no cooldown running (a new
    firing is a new episode, with a new id)."""
    if not change.late:
        return [], {}
    retractions, reset = [], {}
    cfg = rules.get("inactivity")
    state = states.get("inactivity")
    if cfg.enabled and state is not None and state.last_fired_at is not None:
        fired_at = _aware(state.last_fired_at)
        why = inactivity_did_not_hold(fired_at, cfg.threshold, change.late)  # type: ignore[attr-defined]
        if why is not None:
            episode = f"inactivity:{state.episode}"
            retractions.append(
                Retraction(
                    account_id=change.account_id,
                    rule="inactivity",
                    signal_id=signal_id_for(change.account_id, "inactivity", episode),
                    fired_at=fired_at,
                    reason=why,
                )
            )
            reset["inactivity"] = state.but(
                armed=True, last_fired_at=None, condition_since=None, cleared_since=None
            )
    return retractions, reset


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
