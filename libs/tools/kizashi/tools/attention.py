"""A rep's daily budget applied offline to replayed signals (issue #20, item 7): each owner's
alerts per day with and without the budget, and the digests that carry what waited.

The choice is kizashi.contracts.budget's `Ledger`, the code the notifier's consumer runs;
here the alerts arrive in the order they fired, on one receiver, and the day is the UTC date
they fired on (in the notifier, the UTC date they arrived). No database, no notifier."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from kizashi.contracts.budget import (
    DailyBudget,
    Ledger,
    alert_rank,
    budget_day,
    budget_key,
    by_rank,
    owner_key,
    window_end,
)
from kizashi.contracts.signals import SignalBase

NO_OWNER = "(no owner)"


@dataclass
class BudgetRun:
    """What the budget did to a stream of signals."""

    # (owner, day) -> alerts that day: all of them, and those sent at once.
    alerts: Counter[tuple[str, date]] = field(default_factory=Counter)
    immediate: Counter[tuple[str, date]] = field(default_factory=Counter)
    sent_at_once: list[SignalBase] = field(default_factory=list)
    # (owner, when the digest goes out) -> the deferred alerts it carries, by rank.
    digests: dict[tuple[str, datetime], list[SignalBase]] = field(default_factory=dict)
    budgets: dict[str, DailyBudget] = field(default_factory=dict)

    @property
    def deferred(self) -> list[SignalBase]:
        return [s for carried in self.digests.values() for s in carried]

    def over_budget(self) -> list[tuple[str, date]]:
        """The (owner, day)s with more alerts than went at once."""
        return sorted(k for k, n in self.alerts.items() if n > self.immediate[k])

    def table(self) -> str:
        """Each rep's alerts per day: without the budget, at once with it, deferred."""
        width = max([len(owner) for owner, _ in self.alerts] + [len("rep")])
        lines = [f"{'rep':<{width}}  day         without  with  deferred"]
        for owner, day in sorted(self.alerts):
            total, now = self.alerts[(owner, day)], self.immediate[(owner, day)]
            mark = "  ← over budget" if total > now else ""
            lines.append(
                f"{owner:<{width}}  {day.isoformat()}  {total:>7}  {now:>4}  {total - now:>8}{mark}"
            )
        for (owner, at), carried in sorted(self.digests.items()):
            ranks = ", ".join(f"{s.rule} {alert_rank(s):,.0f}" for s in carried)
            lines.append(f"digest for {owner} at {at:%Y-%m-%d %H:%M} UTC: {ranks}")
        return "\n".join(lines)


def simulate_budget(
    signals: Iterable[SignalBase],
    budget_for: Callable[[SignalBase], DailyBudget],
    *,
    digest: timedelta = timedelta(days=1),
    receiver: str = "slack",
) -> BudgetRun:
    """Offer each signal, in the order it fired, to its owner's budget; what waits joins the
    owner's digest of `digest` (epoch-aligned, as the notifier's), listed by rank."""
    run = BudgetRun()
    ledger = Ledger()
    waiting: dict[tuple[str, datetime], list[SignalBase]] = defaultdict(list)
    for signal in sorted(signals, key=lambda s: s.fired_at):
        owner = owner_key(signal.account)
        day = budget_day(signal.fired_at)
        run.alerts[(owner or NO_OWNER, day)] += 1
        if owner is None:  # no rep, no budget: the notifier sends it at once too
            run.immediate[(NO_OWNER, day)] += 1
            run.sent_at_once.append(signal)
            continue
        budget = run.budgets.setdefault(owner, budget_for(signal))
        if ledger.offer(budget_key(receiver, owner, day), budget, alert_rank(signal)):
            run.immediate[(owner, day)] += 1
            run.sent_at_once.append(signal)
        else:
            waiting[(owner, window_end(digest, signal.fired_at))].append(signal)
    run.digests = {key: by_rank(carried) for key, carried in sorted(waiting.items())}
    return run
