"""Folding a batch's events into an account's state, with score-history points at the past
times the events tell about. Pure: no I/O.

A live batch holds events of today: they are folded in the order they came, and the history
gets one point, the published score at the batch's time (kizashi.scoring.pipeline). A backfill
(`kizashi demo`'s four weeks, an import replaying old events) holds events of past days. Those
are folded in time order, and at the end of each past UTC day that had events the score as of
that moment is computed (state, facts and `features_at` at 23:59:59.999999 of that day; scores
are functions of state and time) and kept as a point when it would have been published then:
the first one, a new segment or priority, or CS or OP `changes.min_points` away from the point
before (the same rule as `scores.changed`).

A past day gets a point only when the state held nothing newer than that day before the batch
(the day is on or after the newest day already folded in, its *horizon*): then the state at the
end of the day is exactly what live scoring would have had. Events older than the horizon still
count in the scores from then on, but add no point of their own: the state mixes them with
later events, and the events themselves are not kept to fold again. So a backfill should send
its events oldest first, as `kizashi demo` does; a batch that spans many days is exact however
its events are ordered inside it.

Cost: one `features_at` and one `score(explain=False)` (the numbers without the sentences of the
breakdown, about a third of a full score) per past day with events, and none for a live batch.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.decay import DAY_S
from kizashi.contracts.events import EventEnvelope, occurred
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.features import AccountState, facts_model, features_at, utc_day
from kizashi.scoring.indices import meaningful_change, score
from kizashi.scoring.observations import Observed
from kizashi.scoring.segments import SegmentHold

# (at, cs, op, segment, priority, phase): one row of score_history. A past point's phase is
# None (not computed: the ladder's expiry is read at the live score only).
Point = tuple[datetime, float, float, str, str, int | None]
_LAST_MICROSECOND = timedelta(days=1, microseconds=-1)


def horizon_day(state: AccountState) -> int | None:
    """The newest UTC day of anything the state holds (None when empty)."""
    newest = state.max_day
    if state.usage:
        newest = max(newest or 0, utc_day(state.usage[0]))
    for entry in state.crm.values():
        newest = max(newest or 0, utc_day(entry[0]))
    for entries in state.surveys.values():
        if entries:
            newest = max(newest or 0, utc_day(entries[0][0]))
    return newest


def end_of_day(day: int) -> datetime:
    return datetime.fromtimestamp(day * DAY_S, UTC) + _LAST_MICROSECOND


def fold(
    state: AccountState,
    account_id: str,
    events: Sequence[EventEnvelope],
    *,
    published: dict | None,
    config: ScoringConfig,
    now: datetime,
    keep_since: datetime | None = None,
    hold: SegmentHold | None = None,
) -> list[Point]:
    """Apply `events` to `state` (in place) and return the past points they make, oldest
    first. `published` is the score last published (cs, op, segment, priority), the first
    point's reference; `keep_since` the retention cut-off (no point before it); `hold` the
    segment the account holds, stepped at each past point (kizashi.scoring.segments)."""
    today = utc_day(now.timestamp())
    today_start = datetime.fromtimestamp(today * DAY_S, UTC)
    if not any(occurred(event) < today_start for event in events):
        for event in events:  # the live path: nothing of a past day
            state.apply(event)  # type: ignore[arg-type]
        return []
    # Past days from the horizon on (and within retention) get points.
    first = horizon_day(state)
    if keep_since is not None:
        floor = utc_day(keep_since.timestamp())
        first = floor if first is None else max(first, floor)

    def recorded(day: int | None) -> bool:
        return day is not None and day < today and (first is None or day >= first)

    timed = sorted(
        ((occurred(event).timestamp(), event) for event in events), key=lambda pair: pair[0]
    )
    points: list[Point] = []
    reference = published
    facts = None
    day: int | None = None
    for ts, event in timed:
        event_day = utc_day(ts)
        if event_day != day and recorded(day):
            if facts is None:
                facts = facts_model(state.facts_json(account_id))
            reference = _point(state, facts, day, reference, config, points, hold)
        state.apply(event)  # type: ignore[arg-type]
        day = event_day
        if event.type == "account_update":  # type: ignore[attr-defined]
            facts = None  # the facts changed: read them again at the next point
    if recorded(day):
        if facts is None:
            facts = facts_model(state.facts_json(account_id))
        _point(state, facts, day, reference, config, points, hold)
    return points


def _point(
    state: AccountState,
    facts: AccountFacts,
    day: int,
    reference: dict | None,
    config: ScoringConfig,
    points: list[Point],
    hold: SegmentHold | None,
) -> dict | None:
    """The score at the end of `day`, appended to `points` when it would have been published;
    returns the new reference."""
    at = end_of_day(day)
    # The observations as the state holds them; the phase counted as unknown (see Point).
    observed = Observed.of(state.obs, None)
    features = features_at(
        state, facts, at, rates=config.purchases.rates, catalogue=config.purchases.products
    )
    snapshot = score(
        features, facts, config, at, explain=False, observed=observed, hold=hold
    ).snapshot
    if not meaningful_change(reference, snapshot, config):
        return reference
    points.append((at, snapshot.cs, snapshot.op, snapshot.segment, snapshot.priority, None))
    return {
        "cs": snapshot.cs,
        "op": snapshot.op,
        "segment": snapshot.segment,
        "priority": snapshot.priority,
    }
