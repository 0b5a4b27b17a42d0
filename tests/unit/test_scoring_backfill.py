"""Score history's past points (kizashi.scoring.backfill): the score as of the end of each past
day with events, from the state's horizon on, whatever the order inside the batch; nothing
extra on the live path; and `score(explain=False)` gives the very numbers of a full score."""

import random
from datetime import timedelta

from kizashi.scoring.backfill import end_of_day, fold, horizon_day
from kizashi.scoring.features import AccountState, facts_model, features_at, utc_day
from kizashi.scoring.indices import score
from tests.unit.scoring_events import CONFIG, NOW, event, state_of


def _month() -> list:
    events = [event("account_update", NOW - timedelta(days=35), name="Acme", seats=10, arr=9e4)]
    for day in range(1, 29):
        for user in range(1 + day % 5):
            events.append(
                event(
                    "product_usage",
                    NOW - timedelta(days=day, hours=user),
                    user_id=f"u{user}",
                    action="feature_used",
                    feature=f"f{(day + user) % 4}",
                )
            )
    events.append(event("survey_response", NOW - timedelta(days=3), survey_id="q", nps=9))
    return events


def test_each_past_day_gets_the_score_as_of_its_end_whatever_the_order() -> None:
    events = _month()
    state = AccountState()
    points = fold(state, "acme", events, published=None, config=CONFIG, now=NOW)
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    again = fold(AccountState(), "acme", shuffled, published=None, config=CONFIG, now=NOW)
    assert [p[0] for p in points] == [p[0] for p in again]
    assert [p[1:] for p in points] == [p[1:] for p in again]
    # Points at the end of past days only, oldest first, spread over the month.
    days = [utc_day(p[0].timestamp()) for p in points]
    assert days == sorted(set(days)) and days[-1] < utc_day(NOW.timestamp())
    assert all(p[0] == end_of_day(d) for p, d in zip(points, days, strict=True))
    assert days[-1] - days[0] >= 28
    # Each is what live scoring would have said then: the state of the events up to that time.
    for at, cs, op, segment, priority, phase in points:
        assert phase is None  # not computed for past points
        then = state_of(*(e for e in events if e.occurred_at <= at))
        facts = facts_model(then.facts_json("acme"))
        snapshot = score(features_at(then, facts, at), facts, CONFIG, at).snapshot
        assert (cs, op, segment, priority) == (
            snapshot.cs,
            snapshot.op,
            snapshot.segment,
            snapshot.priority,
        )
    # And the state is the same as the live fold's.
    assert state.to_json()["days"] == state_of(*events).to_json()["days"]


def test_only_published_moves_become_points() -> None:
    points = fold(AccountState(), "acme", _month(), published=None, config=CONFIG, now=NOW)
    for before, after in zip(points, points[1:], strict=False):
        moved = abs(after[1] - before[1]) >= 1 or abs(after[2] - before[2]) >= 1
        assert moved or after[3:] != before[3:]


def test_the_live_path_and_days_before_the_horizon_add_no_point() -> None:
    today = [event("product_usage", NOW - timedelta(minutes=m), action="x") for m in (1, 5)]
    assert fold(AccountState(), "acme", today, published=None, config=CONFIG, now=NOW) == []
    # The state already holds yesterday: older days cannot be told again, yesterday can.
    state = state_of(event("product_usage", NOW - timedelta(days=1), action="x"))
    assert horizon_day(state) == utc_day((NOW - timedelta(days=1)).timestamp())
    late = [
        event("product_usage", NOW - timedelta(days=d, hours=1), user_id=f"u{d}", action="x")
        for d in (1, 5, 9)
    ]
    points = fold(state, "acme", late, published=None, config=CONFIG, now=NOW)
    assert [utc_day(p[0].timestamp()) for p in points] == [horizon_day(state)]
    assert state.counts["product_usage"] == 4  # every event still counts


def test_no_point_before_the_retention() -> None:
    points = fold(
        AccountState(),
        "acme",
        _month(),
        published=None,
        config=CONFIG,
        now=NOW,
        keep_since=NOW - timedelta(days=10),
    )
    assert points and min(p[0] for p in points) >= NOW - timedelta(days=10)


def test_explain_false_gives_the_same_numbers_without_the_breakdown() -> None:
    events = _month()
    for days_back in range(0, 30, 3):
        at = NOW - timedelta(days=days_back)
        state = state_of(*(e for e in events if e.occurred_at <= at))
        facts = facts_model(state.facts_json("acme"))
        features = features_at(state, facts, at)
        full = score(features, facts, CONFIG, at)
        lean = score(features, facts, CONFIG, at, explain=False)
        # 17 parts and a confidence line per index
        assert lean.snapshot == full.snapshot and lean.lines == [] and len(full.lines) == 19
