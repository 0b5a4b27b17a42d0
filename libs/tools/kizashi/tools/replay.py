"""An event history replayed offline through the same scoring and rule code as the services:
no Kafka, no PostgreSQL, a simulated clock. `kizashi backtest` and the scenario tests use it.

What each service does, here in one process:
- scoring's consumer: `pipeline.rescore` of the account with the new event, at the event's
  processing time (`received_at` when the history has it, else `occurred_at`), each event id
  applied once;
- scoring's sweep: `rescore` with no event when the account's `next_check_at` comes;
- triggers' consumer: `decide` on every scores.changed;
- triggers' sweep: `sweep_decide` when the account's `next_sweep_at` comes (auto-resolve too).

By default the sweeps run at the exact times the accounts are due (what the services
approach with a short sweep interval). `tick` runs them on a fixed period instead, as the
services do, and `sweep_all` makes the triggers sweep look at every account at every tick,
ignoring `next_sweep_at`: a test oracle for the scheduling.

A rep's hand (the recycle process, issue #21): `resolve` plans a rep resolving an account's
open signal of a rule, with a reason, at a given time, as triggers' resolve endpoint does
(kizashi.triggers.lifecycle). A "not now" reason parks the account with `recycle.park`; it
comes back as a `recycled` opportunity built by `recycle.return_signal`, as triggers' sweep
(timing, no_budget, not_contacted: at the exact time it is due, or at the next tick) and
consumer (no_need: on the scores.changed whose OP reaches the target) return it
(kizashi.triggers.returns).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kizashi.contracts.events import EventEnvelope, occurred
from kizashi.contracts.resolutions import RECYCLE_RULE, resolution_problem
from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.signals import SignalBase
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.pipeline import rescore
from kizashi.scoring.repository import StoredAccount
from kizashi.triggers import recycle
from kizashi.triggers.decide import AccountMemory, Decision, decide, sweep_decide
from kizashi.triggers.rules import RuleBook

# What runs first at one instant: a rep's resolution, scoring's sweep, the rules' sweep (which
# sees what scoring's published), then the recycle list's returns (last in triggers' sweep).
_RESOLVE, _SCORE, _RULES, _RETURN = 0, 1, 2, 3


def processing_time(event: EventEnvelope) -> datetime:
    """When the services would have processed the event: a backfilled event counts when it
    was received, not when it happened."""
    return event.received_at or occurred(event)


@dataclass
class Resolution:
    signal_id: str
    account_id: str
    rule: str
    at: datetime
    # A rep's (`Replay.resolve`): the reason and who; None for an auto-resolution.
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class PlannedResolution:
    """A rep resolving the account's open signal of `rule` at `at` (`Replay.resolve`)."""

    account_id: str
    rule: str
    at: datetime
    reason: str | None
    months: int | None
    by: str


@dataclass
class ReplayResult:
    signals: list[SignalBase] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    # The recycle list's entries as parked (kizashi.triggers.recycle.entry), oldest first.
    parked: list[dict[str, Any]] = field(default_factory=list)
    # Firings held back by the per-account daily cap, by rule (they fire later or never).
    suppressed: Counter[str] = field(default_factory=Counter)
    # Every published score per account, oldest first: (when, CS, OP), as the console's
    # history has them (`kizashi backtest --outcomes` reads an account's score as of a day).
    scores: dict[str, list[tuple[datetime, float, float]]] = field(default_factory=dict)
    events: int = 0
    duplicates: int = 0
    score_changes: int = 0
    sweeps: int = 0
    accounts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None


class Replay:
    def __init__(
        self,
        *,
        scoring: ScoringConfig,
        rules: RuleBook,
        tick: timedelta | None = None,
        sweep_all: bool = False,
    ) -> None:
        if sweep_all and tick is None:
            raise ValueError("sweep_all needs a tick")
        self.scoring, self.rules, self.tick, self.sweep_all = scoring, rules, tick, sweep_all
        self.clock: datetime | None = None
        self.result = ReplayResult()
        self._stored: dict[str, StoredAccount] = {}
        self._memories: dict[str, AccountMemory] = {}
        self._seen: set[str] = set()
        self._open: dict[tuple[str, str], list[str]] = {}
        self._signals: dict[str, SignalBase] = {}
        self._latest: dict[str, ScoresChanged] = {}
        # The recycle list: the entry waiting per account (a newer one supersedes it).
        self._waiting: dict[str, dict[str, Any]] = {}
        self._planned: dict[str, list[PlannedResolution]] = {}
        # Due times: the current one per (kind, account), and a heap with stale entries skipped.
        self._due: dict[tuple[int, str], datetime] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._pending: list[EventEnvelope] = []
        self._pending_at: datetime | None = None

    # ------------------------------------------------------------------ public

    def feed(self, event: EventEnvelope) -> None:
        """Take one event; events must come in processing-time order. Events of one instant
        are applied together, per account, as one consumer batch would apply them."""
        at = processing_time(event)
        if self._pending and at != self._pending_at:
            self._flush()
        if self.clock is not None and at < self.clock:
            raise ValueError(f"event {event.event_id} is out of order ({at} < {self.clock})")
        self._pending_at = at
        self._pending.append(event)

    def resolve(
        self,
        account_id: str,
        rule: str,
        *,
        at: datetime,
        reason: str | None,
        months: int | None = None,
        by: str = "rep@replay",
    ) -> None:
        """Plan a rep resolving the account's open `rule` signal at `at`, with a reason (an
        opportunity needs one: kizashi.contracts.resolutions). Plan it before the replay
        reaches `at`; when the time comes the account must have such a signal open."""
        if self.clock is not None and at < self.clock:
            raise ValueError(f"resolution at {at} is before the replay's clock ({self.clock})")
        plan = PlannedResolution(account_id, rule, at, reason, months, by)
        self._planned.setdefault(account_id, []).append(plan)
        heapq.heappush(self._heap, (at, _RESOLVE, account_id))

    def run(
        self, events: Iterable[EventEnvelope], *, until: datetime | None = None
    ) -> ReplayResult:
        for event in events:
            self.feed(event)
        return self.finish(until)

    def advance(self, until: datetime) -> None:
        """Run every sweep due up to and including `until`."""
        if self.tick is not None:
            self._advance_ticks(until)
            return
        while self._heap and self._heap[0][0] <= until:
            at, kind, account_id = heapq.heappop(self._heap)
            if kind == _RESOLVE:
                self._set_clock(at)
                self._rep_resolve(account_id, at)
                continue
            if self._due.get((kind, account_id)) != at:
                continue  # rescheduled since
            del self._due[(kind, account_id)]
            self._set_clock(at)
            self._sweep(kind, account_id, at)

    def finish(self, until: datetime | None = None) -> ReplayResult:
        self._flush()
        if until is not None:
            self.advance(until)
            self._set_clock(until)
        self.result.accounts = len(self._stored)
        self.result.ended_at = self.clock
        return self.result

    # ------------------------------------------------------------------ the services' steps

    def _flush(self) -> None:
        if not self._pending:
            return
        at, events, self._pending = self._pending_at, self._pending, []
        self.advance(at)
        self._set_clock(at)
        by_account: dict[str, list[EventEnvelope]] = {}
        for event in events:
            self.result.events += 1
            if event.event_id in self._seen:
                self.result.duplicates += 1
                continue
            self._seen.add(event.event_id)
            by_account.setdefault(event.account_id, []).append(event)
        for account_id, account_events in by_account.items():
            self._rescore(account_id, tuple(account_events), at, cause="events")

    def _rescore(self, account_id: str, events: tuple, at: datetime, *, cause: str) -> None:
        stored = self._stored.get(account_id) or StoredAccount(account_id, None, None)
        outcome = rescore(stored, events, config=self.scoring, now=at, cause=cause)
        scored = outcome.scored
        self._stored[account_id] = StoredAccount.after(scored)
        self._schedule(_SCORE, account_id, scored.next_check_at)
        change = published(outcome)
        if change is not None:
            self.result.score_changes += 1
            self.result.scores.setdefault(account_id, []).append(
                (at, change.after.cs, change.after.op)
            )
            self._decide(change, at)

    def _decide(self, change: ScoresChanged, at: datetime) -> None:
        memory = self._memories.setdefault(change.account_id, AccountMemory())
        self._latest[change.account_id] = change
        self._take(change.account_id, decide(change, memory, self.rules, now=at), at)
        self._schedule(_RULES, change.account_id, memory.next_sweep_at)
        # The consumer's return_risen: a `no_need` entry whose OP target this change reaches.
        waiting = self._waiting.get(change.account_id)
        if waiting and waiting["op_target"] is not None and change.after.op >= waiting["op_target"]:
            self._return(change.account_id, at)

    def _sweep(self, kind: int, account_id: str, at: datetime) -> None:
        if kind == _RETURN:
            self._return(account_id, at)
            return
        self.result.sweeps += 1
        if kind == _SCORE:
            self._rescore(account_id, (), at, cause="sweep")
            return
        memory = self._memories.get(account_id)
        if memory is None or memory.latest is None:
            return
        self._take(account_id, sweep_decide(memory, self.rules, now=at), at)
        self._schedule(_RULES, account_id, memory.next_sweep_at)

    def _take(self, account_id: str, decision: Decision, at: datetime) -> None:
        for signal in decision.signals:
            self._emit(signal)
        self.result.suppressed.update(decision.evaluation.suppressed)
        for rule in decision.evaluation.cleared:
            for signal_id in self._open.pop((account_id, rule), []):
                self.result.resolutions.append(Resolution(signal_id, account_id, rule, at))

    def _emit(self, signal: SignalBase) -> None:
        self.result.signals.append(signal)
        self._signals[signal.signal_id] = signal
        self._open.setdefault((signal.account_id, signal.rule), []).append(signal.signal_id)

    # ------------------------------------------------------------------ the recycle process

    def _rep_resolve(self, account_id: str, at: datetime) -> None:
        """The planned resolutions of this account at this instant, as the resolve endpoint
        (kizashi.triggers.lifecycle.resolve_with_reason) does them."""
        plans = self._planned.get(account_id, [])
        for plan in [p for p in plans if p.at == at]:
            plans.remove(plan)
            ids = self._open.get((account_id, plan.rule))
            if not ids:
                raise ValueError(f"{account_id} has no open {plan.rule} signal at {at}")
            signal = self._signals[ids.pop()]
            if not ids:
                del self._open[(account_id, plan.rule)]
            if problem := resolution_problem(signal.kind, plan.reason, plan.months):
                raise ValueError(f"resolving {account_id}'s {plan.rule}: {problem}")
            self.result.resolutions.append(
                Resolution(signal.signal_id, account_id, plan.rule, at, plan.reason, plan.by)
            )
            if plan.reason is not None:
                self._park(signal, plan, at)

    def _park(self, signal: SignalBase, plan: PlannedResolution, at: datetime) -> None:
        # What triggers reads when it parks (repository.recycle.lock_for_resolve): the
        # account and OP of its latest change, else as the signal fired; the fiscal year end
        # month inferred (the feature), else the CRM's.
        latest = self._latest.get(signal.account_id)
        account = latest.account if latest is not None else signal.account
        fiscal = (latest.features if latest is not None else {}).get("fiscal_year_end_month")
        owner = (account.owner_email or signal.account.owner_email or "").lower() or None
        parked = recycle.park(
            plan.reason,
            plan.months,
            now=at,
            account={
                **account.model_dump(mode="json"),
                "fiscal_year_end_month": fiscal if fiscal is not None else account.fiscal_year_end,
            },
            op=latest.after.op if latest is not None else signal.scores.op,
            owner=owner,
            config=self.rules.recycle,
        )
        if parked is None:
            return
        entry = recycle.entry(
            parked,
            signal_id=signal.signal_id,
            account_id=signal.account_id,
            rule=signal.rule,
            set_at=at,
            set_by=plan.by,
            owner=owner,
        )
        self.result.parked.append(entry)
        self._waiting[signal.account_id] = entry  # supersedes one still waiting
        returns_at = parked.returns_at
        self._schedule(_RETURN, signal.account_id, max(returns_at, at) if returns_at else None)

    def _return(self, account_id: str, at: datetime) -> None:
        """The account's waiting entry back as a `recycled` opportunity, built from its latest
        change, else from the signal it was parked from (kizashi.triggers.returns)."""
        entry = self._waiting.pop(account_id)
        self._due.pop((_RETURN, account_id), None)
        latest = self._latest.get(account_id)
        parked = self._signals[entry["signal_id"]]
        signal = recycle.return_signal(
            entry,
            account=latest.account if latest else parked.account,
            scores=latest.after if latest else parked.scores,
            phase=latest.phase if latest else parked.phase,
            now=at,
            config=self.rules.recycle,
        )
        assert signal.rule == RECYCLE_RULE
        self._emit(signal)

    # ------------------------------------------------------------------ the clock

    def _set_clock(self, at: datetime) -> None:
        if self.result.started_at is None:
            self.result.started_at = at
        if self.clock is None or at > self.clock:
            self.clock = at

    def _schedule(self, kind: int, account_id: str, at: datetime | None) -> None:
        key = (kind, account_id)
        if at is None:
            self._due.pop(key, None)
            return
        self._due[key] = at
        if self.tick is None:
            heapq.heappush(self._heap, (at, kind, account_id))

    def _advance_ticks(self, until: datetime) -> None:
        assert self.tick is not None
        if self.clock is None:
            return
        step = self.tick.total_seconds()
        tick = _at(math.floor(self.clock.timestamp() / step) * step + step)
        while tick <= until:
            self._resolve_until(tick)
            self._set_clock(tick)
            for kind in (_SCORE, _RULES, _RETURN):  # the returns last, as in sweep_once
                if kind == _RULES and self.sweep_all:
                    due = sorted(self._memories)
                else:
                    due = sorted(a for (k, a), at in self._due.items() if k == kind and at <= tick)
                for account_id in due:
                    self._due.pop((kind, account_id), None)
                    self._sweep(kind, account_id, tick)
            tick += self.tick
        self._resolve_until(until)

    def _resolve_until(self, until: datetime) -> None:
        """With a tick, the heap holds only the planned resolutions: a rep acts on the dot."""
        while self._heap and self._heap[0][0] <= until:
            at, _, account_id = heapq.heappop(self._heap)
            self._set_clock(at)
            self._rep_resolve(account_id, at)


def published(outcome: Any) -> ScoresChanged | None:
    """The scores.changed as triggers would read it off the topic: encoded, then decoded."""
    if getattr(outcome, "message", None) is None and getattr(outcome, "change", None) is None:
        return None
    if hasattr(outcome, "encoded"):
        return ScoresChanged.model_validate_json(outcome.encoded())
    return ScoresChanged.model_validate_json(outcome.change.model_dump_json())


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
