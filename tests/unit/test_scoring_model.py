"""CS and OP: orderings, breakdowns, neutral missing data, segments, priority and drift checks."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from kizashi.contracts.scores import ScoreSnapshot
from kizashi.scoring.config import CONDITIONAL_PARTS
from kizashi.scoring.drift import next_drift_check
from kizashi.scoring.features import AccountState, features_at
from kizashi.scoring.indices import (
    ScoreResult,
    meaningful_change,
    priority_of,
    score,
    segment_of,
)
from tests.unit.scoring_events import CONFIG, NOW, event, state_of


def scored(state: AccountState, now: datetime = NOW) -> ScoreResult:
    facts = state.facts("acme")
    return score(features_at(state, facts, now), facts, CONFIG, now)


def heavy_use(days: int = 28) -> list:
    return [
        event(
            "product_usage",
            NOW - timedelta(days=d, hours=h),
            action="feature_used",
            user_id=f"u{(d + h) % 9}",
            feature=f"f{h % 6}",
        )
        for d in range(days)
        for h in range(0, 24, 3)
    ]


def crm(**fields: Any):
    return event("account_update", NOW - timedelta(days=60), **fields)


def component(result: ScoreResult, name: str):
    return next(line for line in result.breakdown if line.component == name)


def test_heavy_use_and_a_promoter_beat_silence_and_a_detractor() -> None:
    seats = crm(seats=10)
    happy = scored(
        state_of(
            seats,
            *heavy_use(),
            event("survey_response", NOW - timedelta(days=2), survey_id="s", nps=9),
        )
    )
    unhappy = scored(
        state_of(seats, event("survey_response", NOW - timedelta(days=2), survey_id="s", nps=2))
    )
    assert happy.snapshot.cs > 80 > 30 > unhappy.snapshot.cs
    assert component(happy, "nps").explanation == "NPS 9 (promoter) on 2026-11-18"
    assert component(unhappy, "nps").explanation == "NPS 2 (detractor) on 2026-11-18"


def test_stated_intent_and_buying_behaviour_raise_op() -> None:
    signals = [
        event("survey_response", NOW - timedelta(days=3), survey_id="s", upsell_intent=9),
        *(
            event("web_visit", NOW - timedelta(days=d), url="https://x.io/pricing")
            for d in (1, 2, 3)
        ),
        *(
            event(
                "email_engagement",
                NOW - timedelta(days=d),
                action="click",
                campaign_id="c",
                tags=["cross_sell"],
            )
            for d in (1, 5)
        ),
    ]
    keen, quiet = scored(state_of(*signals)), scored(state_of())
    assert keen.snapshot.op >= quiet.snapshot.op + 30
    assert component(keen, "pricing_interest").explanation == (
        "3 pricing visits and 0 product-page visits in the last 7 days"
    )
    assert component(keen, "cross_sell").raw == 2
    assert component(keen, "upsell_intent").explanation == "Stated upsell intent 9/10 on 2026-11-17"


def test_an_engaged_decision_maker_raises_op_fit() -> None:
    deciders = crm(decision_makers=["cfo", "cto"])
    visit = event("web_visit", NOW - timedelta(days=2), url="https://x.io/blog", user_id="cfo")
    engaged = component(scored(state_of(deciders, visit)), "decision_maker")
    absent = component(scored(state_of(deciders)), "decision_maker")
    unknown = component(scored(state_of(visit)), "decision_maker")
    weight = CONFIG.op.weights.decision_maker
    assert (engaged.points, unknown.points, absent.points) == (
        pytest.approx(100 * weight / CONFIG.op.weights.total),
        pytest.approx(100 * weight * CONFIG.missing.decision_maker / CONFIG.op.weights.total),
        0,
    )
    assert engaged.explanation == "1 of the 2 decision makers engaged in the last 28 days"
    assert absent.explanation == "None of the 2 decision makers engaged in the last 28 days"
    alone = crm(decision_makers=["cfo"])
    assert component(scored(state_of(alone, visit)), "decision_maker").explanation == (
        "The decision maker engaged in the last 28 days"
    )
    assert component(scored(state_of(alone)), "decision_maker").explanation == (
        "The decision maker did not engage in the last 28 days"
    )
    assert unknown.explanation == "No decision makers named in the CRM, counted as neutral"
    assert engaged.raw == 1 and absent.raw == 0 and unknown.raw is None


def test_breakdown_lines_add_up_to_the_scores() -> None:
    result = scored(
        state_of(
            crm(seats=12, arr=80_000, plan="starter", renewal_date="2027-02-28"), *heavy_use(10)
        )
    )
    cs_lines = [line for line in result.breakdown if line.index == "cs"]
    op_lines = [line for line in result.breakdown if line.index == "op"]
    # Every part but the observed ones (no line while nothing is logged), and each index's
    # confidence (no weight, no points).
    cs_parts = set(CONFIG.cs.weights.by_name) - CONDITIONAL_PARTS
    op_parts = set(CONFIG.op.weights.by_name) - CONDITIONAL_PARTS
    assert {line.component for line in cs_lines} == {*cs_parts, "confidence"}
    assert {line.component for line in op_lines} == {*op_parts, "confidence"}
    assert sum(line.points for line in cs_lines) == pytest.approx(result.snapshot.cs, abs=0.05)
    assert sum(line.points for line in op_lines) == pytest.approx(result.snapshot.op, abs=0.05)
    for line in result.breakdown:
        assert line.explanation[:1].isupper() or line.explanation[:1].isdigit()
        if line.component == "confidence":
            assert line.weight == line.points == 0 and 0 <= line.raw <= 1
            continue
        assert line.weight == CONFIG.model_dump()[line.index]["weights"][line.component]
    assert component(result, "active_days").explanation == (
        # Ten days back from noon, in 3-hour steps up to 21 h, touches 11 UTC days.
        "11 active days in the last 14, 11 in the last 28"
    )
    assert component(result, "usage_health").explanation == (
        "About 43 uses of the product in the last 7 days, against a target of 60 for 12 seats"
    )
    assert component(result, "renewal_timing").raw == (date(2027, 2, 28) - NOW.date()).days
    # The weights add up to 100, so full timing is worth its weight in points.
    assert component(result, "renewal_timing").points == pytest.approx(
        CONFIG.op.weights.renewal_timing
    )


def test_missing_survey_is_neutral_not_punishing() -> None:
    def nps_points(*events: Any) -> float:
        return component(scored(state_of(*events)), "nps").points

    asked = event("survey_response", NOW, survey_id="s", nps=5)
    half = CONFIG.cs.weights.nps / 2
    assert nps_points() == pytest.approx(nps_points(asked)) == pytest.approx(half)
    assert nps_points() > nps_points(event("survey_response", NOW, survey_id="s", nps=0))
    assert component(scored(state_of()), "nps").explanation.startswith("No NPS answer yet")


def test_old_survey_answers_fade_towards_neutral() -> None:
    fresh = scored(state_of(event("survey_response", NOW, survey_id="s", nps=10)))
    old = scored(
        state_of(event("survey_response", NOW - timedelta(days=180), survey_id="s", nps=10))
    )
    weight = CONFIG.cs.weights.nps
    assert component(fresh, "nps").points == pytest.approx(weight)
    assert component(old, "nps").points == pytest.approx(weight * 0.75)


def test_silence_lowers_cs_with_no_new_event() -> None:
    state = state_of(crm(seats=10), *heavy_use(14))
    now, later = scored(state), scored(state, NOW + timedelta(days=30))
    assert later.snapshot.cs < now.snapshot.cs - 40
    assert component(later, "active_days").raw == 0


def test_segments() -> None:
    high_cs, high_op = CONFIG.segments.cs_high, CONFIG.segments.op_high
    assert segment_of(high_cs, high_op, CONFIG) == "expand"
    assert segment_of(high_cs - 0.01, high_op, CONFIG) == "recover"
    assert segment_of(high_cs, high_op - 0.01, CONFIG) == "nurture"
    assert segment_of(0, 0, CONFIG) == "at_risk"


def test_priority_follows_the_playbook_purchases_and_support_load() -> None:
    """High: buys for high amounts or often, and growing; low: high support needs, whatever
    else holds (issue #21). The usage trend no longer stands in for growing purchases."""
    base: dict[str, float | None] = {"arr": None, "usage_trend": None}
    assert priority_of(base, 50, 20, CONFIG) == "low"
    assert priority_of({**base, "arr": 200_000}, 50, 60, CONFIG) == "high"
    assert priority_of({**base, "arr": 200_000}, 50, 20, CONFIG) == "medium"
    assert priority_of({**base, "arr": 40_000, "usage_trend": 1.8}, 50, 20, CONFIG) == "medium"
    grows = {"spend_growth": 1.2}
    assert priority_of({**base, **grows, "spend_365d": 60_000}, 50, 20, CONFIG) == "high"
    assert priority_of({**base, **grows, "orders_365d": 6}, 50, 20, CONFIG) == "high"
    flat = {"spend_growth": 1.0, "spend_365d": 60_000, "orders_365d": 12}
    assert priority_of({**base, **flat}, 50, 20, CONFIG) == "medium"
    # High support needs make it low, even for a big, growing buyer.
    assert (
        priority_of({**base, **grows, "spend_365d": 60_000, "tickets_28d": 15}, 50, 60, CONFIG)
        == "low"
    )
    assert priority_of({**base, "arr": 200_000, "open_tickets": 8}, 50, 60, CONFIG) == "low"
    assert priority_of({**base, "tickets_28d": 14, "open_tickets": 7}, 50, 20, CONFIG) == "low"
    assert priority_of(base, 50, 70, CONFIG) == "medium"


def test_meaningful_change() -> None:
    snap = ScoreSnapshot(cs=50, op=40, segment="at_risk", priority="low")
    stored = snap.model_dump()  # `before` is the stored row
    assert meaningful_change(None, snap, CONFIG)
    assert not meaningful_change(stored, snap, CONFIG)
    assert not meaningful_change(stored, snap.model_copy(update={"cs": 50.99}), CONFIG)
    assert meaningful_change(stored, snap.model_copy(update={"cs": 51.0}), CONFIG)
    assert meaningful_change(stored, snap.model_copy(update={"op": 38.9}), CONFIG)
    assert meaningful_change(stored, snap.model_copy(update={"priority": "medium"}), CONFIG)
    assert meaningful_change(stored, snap.model_copy(update={"segment": "recover"}), CONFIG)


def test_no_time_dependent_input_means_no_drift_check() -> None:
    assert next_drift_check(AccountState(), NOW, CONFIG) is None
    assert next_drift_check(state_of(crm(arr=5000, plan="pro")), NOW, CONFIG) is None
    # Usage long ago has decayed away and left every window.
    ancient = state_of(event("product_usage", NOW - timedelta(days=400), action="login"))
    assert next_drift_check(ancient, NOW, CONFIG) is None
    # A neutral answer has nothing to fade.
    neutral = state_of(event("survey_response", NOW, survey_id="s", nps=5))
    assert next_drift_check(neutral, NOW, CONFIG) is None


def test_drift_checks_follow_decay_windows_and_the_renewal_calendar() -> None:
    recent = state_of(event("product_usage", NOW - timedelta(hours=1), action="login"))
    assert next_drift_check(recent, NOW, CONFIG) == NOW + timedelta(hours=6)
    # Only window edges left: the next UTC midnight.
    visit = state_of(event("web_visit", NOW - timedelta(days=3), url="https://x.io/pricing"))
    assert next_drift_check(visit, NOW, CONFIG) == datetime(2026, 11, 21, tzinfo=UTC)
    # Renewal far away: the day it enters the timing ramp (120 + 30 days before).
    far = state_of(crm(renewal_date="2027-11-20"))
    assert next_drift_check(far, NOW, CONFIG) == datetime(2027, 6, 23, tzinfo=UTC)
    near = state_of(crm(renewal_date="2027-01-20"))
    assert next_drift_check(near, NOW, CONFIG) == datetime(2026, 11, 21, tzinfo=UTC)
    past = state_of(crm(renewal_date="2026-10-01"))
    assert next_drift_check(past, NOW, CONFIG) is None
    promoter = state_of(event("survey_response", NOW, survey_id="s", nps=10))
    assert next_drift_check(promoter, NOW, CONFIG) == NOW + timedelta(hours=6)


def test_size_fit_shows_the_size_that_gave_its_points() -> None:
    small_arr_many_people = scored(state_of(crm(arr=6_000.0, employees=1_500)))
    line = component(small_arr_many_people, "size_fit")
    assert line.raw == 1_500 and line.points > 0
    assert line.explanation == "ARR 6,000, 1500 employees"
    big_arr = component(scored(state_of(crm(arr=400_000.0, employees=20))), "size_fit")
    assert big_arr.raw == 400_000
