"""A rep's daily attention budget (issue #20, item 3): which alerts go to an owner at once and
which wait for their next digest. Pure code, shared by the notifier (which keeps the day's
tally in PostgreSQL, for every replica) and the offline tools (the scripted month, backtests),
so both choose exactly the same way. docs/notifications.md, "A daily budget per rep".

- rank = ARR × severity; severity = priority weight × kind weight (SEVERITY below). An
  account with no (or zero) ARR counts as 1, so severity still orders its alerts.
- The budget is counted per (receiver, owner) per UTC day: at most `limit` alerts go at once.
- Alerts arrive one at a time, so "chosen by rank" is decided on arrival, with a reserve: the
  first `limit - reserve` alerts of the day go at once whatever their rank; the last
  `reserve` slots go only to an alert that ranks at least as high as every alert the owner
  has had that day (sent or deferred) on that receiver. Once `limit` have gone, every other
  alert of the day waits. Nothing is dropped: what waits goes into the owner's next digest,
  listed by rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.signals import SignalBase

DEFAULT_DAILY_BUDGET = 10
DEFAULT_RESERVE = 2

# Severity = PRIORITY_WEIGHT[priority] × KIND_WEIGHT[kind]. A churn risk weighs 1.5 times an
# opportunity of the same priority: revenue already at risk before revenue that may come.
PRIORITY_WEIGHT = {"high": 3.0, "medium": 2.0, "low": 1.0}
KIND_WEIGHT = {"churn_risk": 1.5, "opportunity": 1.0}


def severity(priority: str, kind: str) -> float:
    """high churn 4.5 · high opportunity 3 · medium churn 3 · medium opportunity 2 ·
    low churn 1.5 · low opportunity 1."""
    return PRIORITY_WEIGHT.get(priority, 1.0) * KIND_WEIGHT.get(kind, 1.0)


def alert_rank(signal: SignalBase) -> float:
    """ARR × severity: what the alert is worth a rep's attention."""
    arr = signal.account.arr
    value = arr if arr is not None and math.isfinite(arr) and arr > 1.0 else 1.0
    return value * severity(signal.priority, signal.kind)  # type: ignore[attr-defined]


def by_rank(signals: list[SignalBase]) -> list[SignalBase]:
    """Highest rank first; equal ranks oldest first, then by id (a stable order)."""
    return sorted(signals, key=lambda s: (-alert_rank(s), s.fired_at, s.signal_id))


def owner_key(account: AccountFacts) -> str | None:
    """Whose budget an alert counts against: the owner's email (as mail systems compare it),
    else their Slack handle; None for an account with no owner (no rep, no budget)."""
    if account.owner_email:
        return account.owner_email.casefold()
    return account.owner_slack or None


def budget_day(moment: datetime) -> date:
    """The budget's day: the UTC date of the alert's arrival."""
    return moment.astimezone(UTC).date()


def window_end(interval: timedelta, moment: datetime) -> datetime:
    """The end of the digest window `moment` falls in. Windows are aligned to the epoch (a
    `1d` digest closes at 00:00 UTC), so every process and every replay agrees on them."""
    period = interval.total_seconds()
    end = math.floor(moment.timestamp() / period + 1) * period
    return datetime.fromtimestamp(end, UTC)


@dataclass(frozen=True)
class DailyBudget:
    """At most `limit` immediate alerts a day (None: no limit), the last `reserve` of them
    kept for an alert that tops the day."""

    limit: int | None = DEFAULT_DAILY_BUDGET
    reserve: int = DEFAULT_RESERVE

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError("a daily budget is 0 or more")
        if self.reserve < 0:
            raise ValueError("a reserve is 0 or more")


UNLIMITED = DailyBudget(limit=None, reserve=0)


@dataclass(frozen=True)
class Tally:
    """One owner's day so far on one receiver: how many alerts went at once, and the highest
    rank of any alert of the day (sent at once or deferred)."""

    immediate: int = 0
    best: float | None = None

    def after(self, rank: float, immediate: bool) -> Tally:
        best = rank if self.best is None else max(self.best, rank)
        return Tally(self.immediate + (1 if immediate else 0), best)


def admits(budget: DailyBudget, tally: Tally, rank: float) -> bool:
    """Whether an alert of `rank` goes at once, given the day so far."""
    if budget.limit is None:
        return True
    if tally.immediate >= budget.limit:
        return False
    if tally.immediate < budget.limit - min(budget.reserve, budget.limit):
        return True
    return tally.best is None or rank >= tally.best


@dataclass
class Ledger:
    """The tallies of many (receiver, owner, day) keys, and the decision for each alert offered
    in arrival order. The notifier seeds it with the day so far read from PostgreSQL (under a
    lock per key, so replicas take turns); the tools start it empty."""

    tallies: dict[str, Tally] = field(default_factory=dict)

    def offer(self, key: str, budget: DailyBudget, rank: float) -> bool:
        tally = self.tallies.get(key, Tally())
        immediate = admits(budget, tally, rank)
        self.tallies[key] = tally.after(rank, immediate)
        return immediate


def budget_key(receiver: str, owner: str, day: date) -> str:
    """The key of one owner's day on one receiver, as the notifier stores it."""
    return f"{receiver}|{owner}|{day.isoformat()}"
