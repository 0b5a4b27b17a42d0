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
from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.signals import SignalBase
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.pipeline import rescore
from kizashi.scoring.repository import StoredAccount
from kizashi.triggers.decide import AccountMemory, Decision, decide, sweep_decide
from kizashi.triggers.rules import RuleBook

_SCORE, _RULES = 0, 1  # at the same instant scoring's sweep runs before the rules see it


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


@dataclass
class ReplayResult:
    signals: list[SignalBase] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
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
        self._take(change.account_id, decide(change, memory, self.rules, now=at), at)
        self._schedule(_RULES, change.account_id, memory.next_sweep_at)

    def _sweep(self, kind: int, account_id: str, at: datetime) -> None:
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
            self.result.signals.append(signal)
            self._open.setdefault((account_id, signal.rule), []).append(signal.signal_id)
        self.result.suppressed.update(decision.evaluation.suppressed)
        for rule in decision.evaluation.cleared:
            for signal_id in self._open.pop((account_id, rule), []):
                self.result.resolutions.append(Resolution(signal_id, account_id, rule, at))

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
            self._set_clock(tick)
            for kind in (_SCORE, _RULES):
                if kind == _RULES and self.sweep_all:
                    due = sorted(self._memories)
                else:
                    due = sorted(a for (k, a), at in self._due.items() if k == kind and at <= tick)
                for account_id in due:
                    self._due.pop((kind, account_id), None)
                    self._sweep(kind, account_id, tick)
            tick += self.tick


def published(outcome: Any) -> ScoresChanged | None:
    """The scores.changed as triggers would read it off the topic: encoded, then decoded."""
    if getattr(outcome, "message", None) is None and getattr(outcome, "change", None) is None:
        return None
    if hasattr(outcome, "encoded"):
        return ScoresChanged.model_validate_json(outcome.encoded())
    return ScoresChanged.model_validate_json(outcome.change.model_dump_json())


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
