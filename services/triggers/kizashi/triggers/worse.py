"""Snooze unless worse (issue #20): a snoozed signal stays quiet until its time, unless its
rule's measure gets worse by the rule's `reopen_if_worse_by` since the snooze. Then it
reopens and alerts once, saying what got worse.

Every measure a rule may watch is recorded on the signal when it is snoozed
(`signals.snooze_measures`, from the account's latest scores with the clock-driven features
moved to that moment). The consumer and the sweep carry each account's measures now
(`Decision.watched`) and `outcome.record` reads, once per batch, the snoozed signals of the
batch's accounts whose rule watches one; the decision (`reopenings`) is pure. The reopen sets
the signal open and clears the recorded measures in one statement guarded by
`status = 'snoozed'`, so it happens once per snooze: a replay finds the signal open.

Measures all get worse downwards: CS in index points, usage (the last 7 days' usage
quantity, `usage_7d`) in per cent of what it was at the snooze.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kizashi.triggers.rules import RuleBook
from kizashi.triggers.rules.base import INSUFFICIENT, n
from kizashi.triggers.schedule import features_now

Measures = dict[str, float | None]


@dataclass(frozen=True)
class Measure:
    name: str
    # True: the amount is a per cent of the value at the snooze; False: points of the value.
    relative: bool

    def worsened(self, at_snooze: float | None, now: float | None, amount: float) -> bool:
        """Worse by at least `amount` since the snooze; an unknown value is never worse."""
        if at_snooze is None or now is None:
            return False
        if self.relative:
            return at_snooze > 0 and now <= at_snooze * (1 - amount / 100)
        return now <= at_snooze - amount

    def said(self, at_snooze: float, now: float, snoozed_at: datetime) -> tuple[str, str]:
        """(the reason, a headline): what got worse since the snooze, with both figures."""
        since = f"since snoozed on {snoozed_at:%Y-%m-%d}"
        if self.relative:
            down = round(100 * (1 - now / at_snooze))
            figures = f"{n(at_snooze, 0)} → {n(now, 0)}"
            return (
                f"Usage in the last 7 days {figures} (down {down}%) {since}",
                f"usage down {down}% more since snoozed",
            )
        figures = f"{round(at_snooze)} → {round(now)}"
        return f"CS {figures} {since}", f"CS {figures} since snoozed"


MEASURES: dict[str, Measure] = {
    "cs": Measure("cs", relative=False),
    "usage": Measure("usage", relative=True),
}


def measures_of(scores: Any, features: Mapping[str, float | None]) -> Measures:
    """Every measure as a change shows it: CS (unknown while the scores stand on too little
    evidence, as health_drop counts it) and the usage of the last 7 days."""
    return {
        "cs": None if scores.segment == INSUFFICIENT else scores.cs,
        "usage": features.get("usage_7d"),
    }


def measures_at(latest: dict[str, Any] | None, now: datetime) -> Measures | None:
    """Every measure as of `now`, from the account's latest scores.changed (JSON, as
    trigger_accounts keeps it) with the clock-driven features moved to `now`; None when
    triggers has no scores for the account yet."""
    if latest is None:
        return None
    after = latest.get("after") or {}
    features = features_now(latest, now)
    cs = None if after.get("segment") == INSUFFICIENT else after.get("cs")
    return {"cs": cs, "usage": features.get("usage_7d")}


@dataclass(frozen=True)
class Reopening:
    signal_id: str
    reason: str
    headline: str


def watching_rules(rules: RuleBook) -> list[str]:
    """The enabled rules that reopen a snoozed signal when their measure gets worse."""
    return [name for name, cfg in rules.enabled() if cfg.__dict__.get("reopen_if_worse_by")]


def reopenings(
    snoozed: Iterable[Mapping[str, Any]], now: Mapping[str, Measures], rules: RuleBook
) -> list[Reopening]:
    """The snoozed signals to reopen: `snoozed` rows (signal_id, account_id, rule,
    snoozed_at, measures: as recorded at the snooze), `now` each account's measures now."""
    out = []
    for row in snoozed:
        cfg = rules.get(row["rule"])
        amount = cfg.__dict__.get("reopen_if_worse_by")
        current = now.get(row["account_id"])
        if not cfg.enabled or amount is None or current is None:
            continue
        measure = MEASURES[cfg.MEASURE]
        before, after = (row["measures"] or {}).get(measure.name), current.get(measure.name)
        if measure.worsened(before, after, amount):
            assert before is not None and after is not None
            reason, headline = measure.said(before, after, row["snoozed_at"])
            out.append(Reopening(row["signal_id"], reason, headline))
    return out


def reopened_payload(payload: dict[str, Any], reopening: Reopening, at: datetime) -> dict:
    """The signal as published again: the reason first, the headline saying what got worse,
    and `reopened_at` (the notifier's delivery ids include it, so this alerts once more)."""
    return {
        **payload,
        "reasons": [reopening.reason, *payload.get("reasons", [])],
        "headline": reopening.headline,
        "reopened_at": at.isoformat(),
    }
