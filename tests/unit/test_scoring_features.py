"""The scoring state: decayed counters, windows, latest answers and CRM facts, in any order."""

import math
import re
from datetime import date, datetime, timedelta
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizashi.scoring.features import (
    FEATURE_NAMES,
    RETENTION_DAYS,
    AccountState,
    _keep_latest,
    event_counts,
    features_at,
)
from kizashi.scoring.indices import score
from tests.unit.scoring_events import CONFIG, NOW, event, state_of


def usage(at: datetime, **fields: Any):
    return event("product_usage", at, action="feature_used", **fields)


def feats(state: AccountState, now: datetime = NOW) -> dict[str, float | None]:
    return features_at(state, state.facts("acme"), now)


def test_feature_names_are_those_of_the_docs() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "features.md").read_text()
    documented: set[str] = set()
    for row in re.findall(r"^\| (`.+?`(?:, `.+?`)*) \|", doc, flags=re.M):
        documented.update(re.findall(r"`(\w+)`", row))
    produced = set(feats(AccountState()))
    assert produced == set(FEATURE_NAMES)
    assert documented == produced


def test_empty_state_is_quiet_not_unknown() -> None:
    f = feats(AccountState())
    assert f["usage_7d"] == 0.0 and f["active_days_14d"] == 0.0
    assert f["usage_trend"] is None and f["last_usage_at"] is None
    assert f["nps"] is None and f["seat_utilisation"] is None and f["days_to_renewal"] is None


def test_decayed_usage_has_the_stated_mean_lives() -> None:
    f = feats(state_of(usage(NOW - timedelta(days=7), quantity=2)))
    assert f["usage_7d"] == pytest.approx(2 * math.exp(-1))
    assert f["usage_28d"] == pytest.approx(2 * math.exp(-0.25))
    assert f["usage_trend"] == pytest.approx(4 * math.exp(-0.75))
    assert f["days_since_usage"] == pytest.approx(7)


def test_steady_usage_reads_as_events_in_the_window_and_a_flat_trend() -> None:
    state = state_of(*(usage(NOW - timedelta(hours=h)) for h in range(0, 24 * 120, 6)))
    f = feats(state)
    assert f["usage_7d"] == pytest.approx(28, rel=0.1)  # 4 a day for 7 days
    assert f["usage_28d"] == pytest.approx(112, rel=0.1)
    assert f["usage_trend"] == pytest.approx(1.0, rel=0.1)


def test_late_event_counts_at_its_occurred_at() -> None:
    recent, late = NOW - timedelta(hours=1), NOW - timedelta(days=10)
    state = state_of(usage(recent, user_id="u1"), usage(late, user_id="u2", feature="export"))
    f = feats(state)
    assert f["last_usage_at"] == recent.timestamp()
    assert f["usage_7d"] == pytest.approx(math.exp(-1 / 24 / 7) + math.exp(-10 / 7))
    assert f["active_days_14d"] == 2 and f["active_days_28d"] == 2
    assert f["active_users_28d"] == 2 and f["distinct_features_28d"] == 1
    # The same late event, a day later, is outside a 7-day window and inside 14 days.
    visit = event("web_visit", NOW - timedelta(days=8), url="https://x.io/pricing")
    state.apply(visit)
    assert feats(state)["pricing_visits_7d"] == 0


def test_window_counts() -> None:
    state = state_of(
        event("web_visit", NOW - timedelta(days=1), url="https://x.io/pricing"),
        event("web_visit", NOW - timedelta(days=6), url="https://x.io/plans"),
        event("web_visit", NOW - timedelta(days=7), url="https://x.io/pricing"),
        event("web_visit", NOW - timedelta(days=2), url="https://x.io/p", page_category="product"),
        event("web_visit", NOW - timedelta(days=2), url="https://x.io/help/reset"),
        event("web_visit", NOW, url="https://x.io/blog/post"),
        event(
            "email_engagement",
            NOW - timedelta(days=3),
            action="click",
            campaign_id="c",
            tags=["cross_sell"],
        ),
        event(
            "email_engagement",
            NOW - timedelta(days=13),
            action="click",
            campaign_id="c",
            tags=["new_product", "x"],
        ),
        event(
            "email_engagement",
            NOW - timedelta(days=15),
            action="click",
            campaign_id="c",
            tags=["upsell"],
        ),
        event("email_engagement", NOW - timedelta(days=1), action="click", campaign_id="c"),
        event("email_engagement", NOW - timedelta(days=1), action="open", campaign_id="c"),
    )
    f = feats(state)
    assert f["pricing_visits_7d"] == 2
    assert f["high_value_visits_7d"] == 3
    assert f["support_visits_14d"] == 1
    assert f["cross_sell_clicks_14d"] == 2
    assert f["email_opens_14d"] == 1


def test_distinct_days_users_features_and_seats() -> None:
    state = state_of(
        *(
            usage(NOW - timedelta(days=d), user_id=f"u{d % 3}", feature=f"f{d % 5}")
            for d in range(20)
        ),
        event("account_update", NOW - timedelta(days=40), seats=4),
    )
    f = feats(state)
    assert f["active_days_14d"] == 14 and f["active_days_28d"] == 20
    assert f["active_users_28d"] == 3 and f["distinct_features_28d"] == 5
    assert f["seats"] == 4 and f["seat_utilisation"] == pytest.approx(0.75)


def test_latest_survey_answers_by_occurred_at_in_any_order() -> None:
    answers = [
        event("survey_response", NOW - timedelta(days=30), survey_id="s", nps=3, csat=2),
        event("survey_response", NOW - timedelta(days=2), survey_id="s", nps=9),
        event("survey_response", NOW - timedelta(days=60), survey_id="s", nps=5, upsell_intent=8),
    ]
    for order in permutations(answers):
        f = feats(state_of(*order))
        assert (f["nps"], f["nps_previous"]) == (9, 3)
        assert f["nps_at"] == (NOW - timedelta(days=2)).timestamp()
        assert (f["csat"], f["csat_previous"]) == (2, None)
        assert f["upsell_intent"] == 8 and f["referral_intent"] is None


def test_crm_facts_last_writer_wins_per_field() -> None:
    t = NOW - timedelta(days=5)
    updates = [
        event("account_update", t, event_id="a", arr=1000, plan="pro", attributes={"tier": 1}),
        event(
            "account_update",
            t + timedelta(days=1),
            event_id="b",
            arr=2000,
            renewal_date="2027-03-01",
            attributes={"region": "eu"},
        ),
        event("account_update", t - timedelta(days=1), event_id="c", plan="free", seats=10),
        event("account_update", t, event_id="d", plan="team"),  # same time as "a": id decides
    ]
    for order in permutations(updates):
        facts = state_of(*order).facts("acme")
        assert facts.arr == 2000 and facts.plan == "team" and facts.seats == 10
        assert facts.renewal_date == date(2027, 3, 1)
        assert facts.attributes == {"tier": 1, "region": "eu"}
    f = features_at(state_of(*updates), state_of(*updates).facts("acme"), NOW)
    assert f["arr"] == 2000 and f["days_to_renewal"] == (date(2027, 3, 1) - NOW.date()).days


def test_old_buckets_are_dropped_but_counters_keep_the_event() -> None:
    state = state_of(usage(NOW, user_id="new"))
    state.apply(usage(NOW - timedelta(days=RETENTION_DAYS + 2), user_id="old"))
    assert len(state.days) == 1 and set(state.user_days) == {"new"}
    assert state.usage[2] > 1.0
    # Arriving first, the old event is pruned once the newer one moves the horizon.
    other = state_of(usage(NOW - timedelta(days=RETENTION_DAYS + 2), user_id="old"))
    other.apply(usage(NOW, user_id="new"))
    assert other.days == state.days and other.user_days == state.user_days
    assert other.usage == pytest.approx(state.usage)


def test_decision_makers_count_when_seen_in_any_event_within_28_days() -> None:
    deciders = event("account_update", NOW - timedelta(days=90), decision_makers=["cfo", "cto"])
    assert feats(state_of(usage(NOW, user_id="cfo")))["decision_makers_engaged_28d"] is None
    assert feats(state_of(deciders))["decision_makers_engaged_28d"] == 0
    seen = [
        event("survey_response", NOW - timedelta(days=3), survey_id="s", nps=9, user_id="cfo"),
        event("web_visit", NOW - timedelta(days=27), url="https://x.io/pricing", user_id="cto"),
        event("email_engagement", NOW, action="open", campaign_id="c", user_id="someone"),
    ]
    assert feats(state_of(deciders, *seen))["decision_makers_engaged_28d"] == 2
    # Seen once 29 days ago (usage) and once 40 days ago (email): no longer engaged.
    stale = [
        usage(NOW - timedelta(days=29), user_id="cfo"),
        event(
            "email_engagement",
            NOW - timedelta(days=40),
            action="open",
            user_id="cto",
            campaign_id="c",
        ),
    ]
    assert feats(state_of(deciders, *stale))["decision_makers_engaged_28d"] == 0


def test_json_round_trip_and_counts() -> None:
    state = state_of(
        usage(NOW, user_id="u", feature="f"),
        event("survey_response", NOW, survey_id="s", nps=7),
        event("account_update", NOW, renewal_date="2027-01-01", attributes={"k": [1]}),
    )
    data = state.to_json()
    again = AccountState.from_json(data)
    assert again == state and again.to_json() == data
    assert AccountState.from_json(None) == AccountState() == AccountState.from_json({})
    assert event_counts(again) == {"product_usage": 1, "survey_response": 1, "account_update": 1}


def test_silence_lowers_usage_features_without_a_new_event() -> None:
    state = state_of(*(usage(NOW - timedelta(days=d), user_id="u") for d in range(10)))
    now, later = feats(state), feats(state, NOW + timedelta(days=30))
    assert later["usage_7d"] < now["usage_7d"] / 50
    assert later["active_days_14d"] == 0 and later["active_users_28d"] == 0
    assert later["days_since_usage"] == pytest.approx(30)


@given(
    st.lists(st.tuples(st.integers(0, 6), st.sampled_from("abcdef")), max_size=40),
    st.integers(1, 4),
    st.randoms(use_true_random=False),
)
def test_keep_latest_top_n_is_order_independent(entries, cap, rnd) -> None:
    def run(items) -> dict[str, int]:
        mapping: dict[str, int] = {}
        for day, key in items:
            _keep_latest(mapping, key, day, cap)
        return mapping

    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert run(entries) == run(shuffled)


# Times spread over 70 days before NOW, so retention pruning takes part too.
_offsets = st.integers(0, 70 * 24 * 60).map(lambda m: NOW - timedelta(minutes=m))
_event = st.one_of(
    st.builds(
        lambda at, user, feature, quantity: dict(
            type="product_usage",
            at=at,
            action="login",
            user_id=user,
            feature=feature,
            quantity=quantity,
        ),
        _offsets,
        st.sampled_from([None, "u1", "u2", "u3"]),
        st.sampled_from([None, "reports", "export"]),
        st.sampled_from([0.0, 1.0, 2.5]),
    ),
    st.builds(
        lambda at, category, user: dict(
            type="web_visit", at=at, url="https://x.io/a", page_category=category, user_id=user
        ),
        _offsets,
        st.sampled_from(["pricing", "product", "support", "docs"]),
        st.sampled_from([None, "u3", "cfo"]),
    ),
    st.builds(
        lambda at, action, tags, user: dict(
            type="email_engagement",
            at=at,
            action=action,
            campaign_id="c",
            tags=tags,
            user_id=user,
        ),
        _offsets,
        st.sampled_from(["open", "click"]),
        st.sampled_from([[], ["cross_sell"], ["upsell", "x"]]),
        st.sampled_from([None, "cfo", "cto"]),
    ),
    st.builds(
        lambda at, nps, csat, intent, user: dict(
            type="survey_response",
            at=at,
            survey_id="s",
            nps=nps,
            csat=csat,
            upsell_intent=intent,
            user_id=user,
        ),
        # Coarse times so ties on occurred_at happen and the event id must break them.
        st.integers(0, 5).map(lambda d: NOW - timedelta(days=d)),
        st.integers(0, 10),
        st.one_of(st.none(), st.integers(1, 5)),
        st.one_of(st.none(), st.integers(0, 10)),
        st.sampled_from([None, "cfo", "cto"]),
    ),
    st.builds(
        lambda at, seats, arr, deciders: dict(
            type="account_update",
            at=at,
            seats=seats,
            arr=arr,
            renewal_date="2027-02-15",
            decision_makers=deciders,
        ),
        st.integers(0, 5).map(lambda d: NOW - timedelta(days=d)),
        st.integers(1, 20),
        st.sampled_from([1000.0, 50_000.0, 900_000.0]),
        st.sampled_from([None, ["cfo"], ["cfo", "cto", "u1"]]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_event, min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.lists(st.integers(1, 30), max_size=4),
)
def test_any_order_and_batching_gives_the_same_features_and_scores(specs, rnd, cuts) -> None:
    events = []
    for index, spec in enumerate(specs):
        spec = dict(spec)
        events.append(event(spec.pop("type"), spec.pop("at"), event_id=f"id{index:03d}", **spec))
    in_order = state_of(*events)

    shuffled = list(events)
    rnd.shuffle(shuffled)
    # Batches, each read back from JSON as the consumer does between transactions.
    batched: dict | None = None
    bounds = [0, *sorted(c for c in cuts if c < len(shuffled)), len(shuffled)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        state = AccountState.from_json(batched)
        for item in shuffled[start:stop]:
            state.apply(item)
        batched = state.to_json()
    other = AccountState.from_json(batched)

    for now in (NOW, NOW + timedelta(days=9)):
        facts_a, facts_b = in_order.facts("acme"), other.facts("acme")
        assert facts_a == facts_b
        f_a, f_b = features_at(in_order, facts_a, now), features_at(other, facts_b, now)
        assert f_a.keys() == f_b.keys()
        for name, value in f_a.items():
            if value is None or f_b[name] is None:
                assert value is f_b[name], name
            else:
                assert value == pytest.approx(f_b[name], rel=1e-9, abs=1e-9), name
        s_a, s_b = score(f_a, facts_a, CONFIG, now), score(f_b, facts_b, CONFIG, now)
        assert s_a.snapshot.cs == pytest.approx(s_b.snapshot.cs, abs=0.011)
        assert s_a.snapshot.op == pytest.approx(s_b.snapshot.op, abs=0.011)
        # Segment and priority follow: equal whenever the rounded indices are (they can only
        # differ when float noise rounds an index across a cut-off).
        if (s_a.snapshot.cs, s_a.snapshot.op) == (s_b.snapshot.cs, s_b.snapshot.op):
            assert s_a.snapshot == s_b.snapshot
    assert event_counts(in_order) == event_counts(other)
