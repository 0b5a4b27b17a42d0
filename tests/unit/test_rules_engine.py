"""The triggers rule engine: thresholds, hysteresis, cooldowns, episodes, the daily cap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizashi.contracts.scores import ObservationFact, ScoreSnapshot
from kizashi.triggers.engine import Evaluation, RuleState, evaluate
from kizashi.triggers.rules import SWEEP_RULES, RuleBook, load_rules_config, parse_rules_config

T0 = datetime(2026, 6, 12, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
BOOK = load_rules_config(None)


def snap(cs: float = 50, op: float = 50, segment: str = "nurture", priority: str = "medium"):
    return ScoreSnapshot(cs=cs, op=op, segment=segment, priority=priority)


def book_with(**rules: dict[str, Any]) -> RuleBook:
    from kizashi.runtime.yamlconfig import overlay
    from kizashi.triggers.rules import read_default_rules

    data = read_default_rules()
    cap = rules.pop("daily_cap_per_account", data["daily_cap_per_account"])
    return parse_rules_config(overlay(data, {"daily_cap_per_account": cap, "rules": rules}))


@dataclass
class Account:
    """Feeds evaluations for one account and persists the states between them, as the
    consumer does."""

    account_id: str = "acc-1"
    book: RuleBook = field(default_factory=lambda: BOOK)
    states: dict[str, RuleState] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)

    def run(self, now: datetime, only: set[str] | None = None, **inputs: Any) -> Evaluation:
        kwargs: dict[str, Any] = {
            "features": {},
            "scores": snap(),
            "scores_before": None,
            "cs_history": [],
        }
        kwargs.update(inputs)
        ev = evaluate(
            account_id=self.account_id,
            states=self.states,
            fired_today=0,
            rules=self.book,
            now=now,
            only=only,
            **kwargs,
        )
        self.states.update(ev.states)
        self.fired += [f.rule for f in ev.firings]
        return ev


def epoch(moment: datetime) -> float:
    return moment.timestamp()


# Each case maps a level to evaluate() inputs at `now`. Levels: fire (exactly at the threshold),
# below (just short of it), band (between re-arm and fire levels), rearm (back past the re-arm
# level). `answered` is the survey answer time for the survey rules (a new time = a new answer).
Make = Callable[[str, datetime, datetime], dict[str, Any]]


def _seat(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    v = {"fire": 0.90, "below": 0.8999, "band": 0.85, "rearm": 0.79}[level]
    return {"features": {"seat_utilisation": v, "active_users_28d": v * 100, "seats": 100}}


def _pricing(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    v = {"fire": 3, "below": 2, "band": 1, "rearm": 0}[level]
    return {"features": {"high_value_visits_7d": v, "pricing_visits_7d": v}}


def _cross_sell(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    v = {"fire": 2, "below": 1, "band": 1, "rearm": 0}[level]
    return {"features": {"cross_sell_clicks_14d": v}}


def _inactivity(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    days = {"fire": 14, "below": 13.9, "band": 7, "rearm": 0.5}[level]
    return {"features": {"last_usage_at": epoch(now - days * DAY), "days_since_usage": days}}


def _usage_drop(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    trend = {"fire": 0.4999, "below": 0.5, "band": 0.6, "rearm": 0.7}[level]
    return {"features": {"usage_trend": trend, "usage_7d": 25 * trend, "usage_28d": 100}}


def _health_drop(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    cs = {"fire": 60, "below": 60.5, "band": 65, "rearm": 71}[level]
    history = [(now - 10 * DAY, 70.0), (now - 3 * DAY, 75.0), (now - DAY, 68.0)]
    return {"scores": snap(cs=cs), "cs_history": history}


def _renewal_window(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    days, cs = {"fire": (100, 60), "below": (100, 59.9), "band": (90, 40), "rearm": (200, 80)}[
        level
    ]
    return {"features": {"days_to_renewal": days}, "scores": snap(cs=cs)}


def _renewal_at_risk(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    days, cs = {"fire": (90, 39.9), "below": (90, 40), "band": (45, 45), "rearm": (45, 50)}[level]
    return {"features": {"days_to_renewal": days}, "scores": snap(cs=cs, segment="at_risk")}


def _expansion(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    if level == "fire":
        return {"scores": snap(61, 61, "expand"), "scores_before": snap(59, 61, "recover")}
    if level == "band":  # still in expand, nothing new
        return {"scores": snap(62, 62, "expand"), "scores_before": snap(61, 61, "expand")}
    return {"scores": snap(59, 61, "recover"), "scores_before": snap(61, 61, "expand")}


def _upsell(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    if level == "band":  # the same answer again
        return {"features": {"upsell_intent": 7, "upsell_intent_at": epoch(answered)}}
    v = {"fire": 7, "below": 6.9, "rearm": 3}[level]
    return {"features": {"upsell_intent": v, "upsell_intent_at": epoch(answered)}}


def _detractor(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    if level == "band":
        return {"features": {"nps": 6, "nps_previous": 9, "nps_at": epoch(answered)}}
    v = {"fire": 6, "below": 7, "rearm": 9}[level]
    return {"features": {"nps": v, "nps_previous": 9, "nps_at": epoch(answered)}}


# The rules on reps' observations: "fire" is a matching observation logged at `answered`,
# "band" the same one again, "below" and "rearm" one that does not match.
def fact(kind: str, at: datetime, **fields: Any) -> ObservationFact:
    return ObservationFact(
        observation_id=f"{kind}-{at.isoformat()}",
        kind=kind,
        occurred_at=at,
        author="rep@example.com",
        fields=fields,
    )


def _observed(kind: str, matching: dict, other: dict | None) -> Make:
    """`other` None: every observation of the kind matches; one past the rule's max_age is
    what does not."""

    def make(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
        if level in ("fire", "band"):
            return {"observations": [fact(kind, answered, **matching)]}
        if other is None:
            rule = next(name for name, make_ in CASES.items() if make_ is make)
            old = now - BOOK.get(rule).max_age - DAY
            return {"observations": [fact(kind, old, **matching)]}
        return {"observations": [fact(kind, answered, **other)]}

    return make


_PERSON = {"person": "Dana Reyes", "role": "CFO"}
_key_person_left = _observed(
    "key_person_change",
    {**_PERSON, "change": "left", "is_decision_maker": True},
    {**_PERSON, "role": "intern", "change": "left", "is_decision_maker": False},
)
_new_decision_maker = _observed(
    "key_person_change",
    {**_PERSON, "change": "joined", "is_decision_maker": True},
    {**_PERSON, "change": "joined", "is_decision_maker": False},
)
_competitor_trouble = _observed(
    "competitor_trouble", {"competitor": "Initrode", "what": "botched delivery"}, None
)
_customer_pain = _observed("customer_pain", {"pain": "urgent"}, None)
_relocation_or_policy = _observed(
    "policy_change", {"direction": "expansion"}, {"direction": "cost_cutting"}
)


def _renewal_timing(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    days = {"fire": 90, "band": 90, "below": 123, "rearm": 200}[level]
    due = (now + days * DAY).date().isoformat()
    return {"observations": [fact("renewal_timing", answered, due_date=due)]}


def _support_surge(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    # The baseline is one ticket a week: the rule needs 2x it and at least 5.
    v = {"fire": 5, "below": 4, "band": 3, "rearm": 1}[level]
    return {"features": {"tickets_7d": v, "tickets_baseline_7d": 1.0, "open_tickets": 2}}


def _fiscal_year_end(level: str, now: datetime, answered: datetime) -> dict[str, Any]:
    v = {"fire": 56, "below": 57, "band": 120, "rearm": 181}[level]
    return {
        "features": {
            "days_to_fiscal_year_end": v,
            "fiscal_year_end_month": 12,
            "fiscal_year_end_inferred": 1,
            "spend_365d": 60_000,
            "spend_growth": 1.2,
        }
    }


CASES: dict[str, Make] = {
    "expansion_ready": _expansion,
    "upsell_intent": _upsell,
    "pricing_interest": _pricing,
    "cross_sell_click": _cross_sell,
    "seat_pressure": _seat,
    "renewal_window": _renewal_window,
    "usage_drop": _usage_drop,
    "inactivity": _inactivity,
    "detractor": _detractor,
    "health_drop": _health_drop,
    "renewal_at_risk": _renewal_at_risk,
    "new_decision_maker": _new_decision_maker,
    "competitor_trouble": _competitor_trouble,
    "customer_pain": _customer_pain,
    "relocation_or_policy_change": _relocation_or_policy,
    "renewal_timing": _renewal_timing,
    "key_person_left": _key_person_left,
    "support_surge": _support_surge,
    "fiscal_year_end": _fiscal_year_end,
}
# Rules whose episodes are answers or observations: the same one again is not a new episode.
OBSERVATION_RULES = {
    "new_decision_maker",
    "competitor_trouble",
    "customer_pain",
    "relocation_or_policy_change",
    "renewal_timing",
    "key_person_left",
}
SURVEY_RULES = {"upsell_intent", "detractor", *OBSERVATION_RULES}


def test_every_catalogued_rule_is_covered():
    assert set(CASES) == {name for name, _ in BOOK.items()}


def step(acc: Account, rule: str, level: str, now: datetime, answered: datetime | None = None):
    return acc.run(now, only={rule}, **CASES[rule](level, now, answered or now))


@pytest.mark.parametrize("rule", CASES)
def test_fires_at_threshold(rule: str):
    acc = Account()
    ev = step(acc, rule, "fire", T0)
    assert [f.rule for f in ev.firings] == [rule]
    firing = ev.firings[0]
    assert firing.kind == BOOK.get(rule).kind
    assert firing.reasons and any(ch.isdigit() for ch in " ".join(firing.reasons))
    assert firing.suggested_play == BOOK.get(rule).suggested_play
    assert acc.states[rule].armed is False and acc.states[rule].episode == 1
    assert acc.states[rule].last_fired_at == T0


@pytest.mark.parametrize("rule", CASES)
def test_does_not_fire_just_below(rule: str):
    acc = Account()
    ev = step(acc, rule, "below", T0)
    assert ev.firings == [] and ev.suppressed == []
    assert acc.states[rule].armed is True


@pytest.mark.parametrize("rule", CASES)
def test_respects_cooldown(rule: str):
    acc = Account()
    cooldown = BOOK.get(rule).cooldown
    assert step(acc, rule, "fire", T0).firings
    step(acc, rule, "rearm", T0 + timedelta(hours=1))
    assert acc.states[rule].armed is True
    # Re-armed, the condition is back, but the cooldown still holds it.
    assert step(acc, rule, "fire", T0 + cooldown - timedelta(minutes=1)).firings == []
    later = T0 + cooldown
    again = step(acc, rule, "fire", later, answered=later)
    assert [f.rule for f in again.firings] == [rule]
    assert acc.states[rule].episode == 2


@pytest.mark.parametrize("rule", CASES)
def test_rearms_only_after_crossing_back(rule: str):
    acc = Account()
    first = step(acc, rule, "fire", T0).firings[0]
    after = T0 + BOOK.get(rule).cooldown + DAY
    # Past the cooldown, still on (or the same answer again), or in the band: not re-armed.
    # (expansion_ready's "fire" inputs are an entry into expand, itself a crossing back.)
    hold = "band" if rule == "expansion_ready" else "fire"
    assert step(acc, rule, hold, after, answered=T0).firings == []
    assert step(acc, rule, "band", after + DAY, answered=T0).firings == []
    assert acc.states[rule].armed is False
    step(acc, rule, "rearm", after + 2 * DAY)
    assert acc.states[rule].armed is True
    second = step(acc, rule, "fire", after + 3 * DAY).firings[0]
    assert second.episode != first.episode and second.signal_id != first.signal_id


@pytest.mark.parametrize("rule", sorted(set(CASES) - SURVEY_RULES - {"expansion_ready"}))
def test_noisy_stream_fires_once_per_episode(rule: str):
    acc = Account()
    now = T0
    for _ in range(2):  # two episodes, each 50 oscillations spread over twice the cooldown
        for i in range(50):
            now += BOOK.get(rule).cooldown * 2 / 50
            step(acc, rule, "fire" if i % 2 else "below", now)
        step(acc, rule, "rearm", now + timedelta(minutes=1))
        now += timedelta(minutes=2)
    assert acc.fired == [rule, rule]
    assert acc.states[rule].episode == 2


@pytest.mark.parametrize("rule", sorted(SURVEY_RULES))
def test_replayed_answer_fires_once(rule: str):
    acc = Account()
    for i in range(50):
        step(acc, rule, "fire", T0 + i * DAY, answered=T0)
    assert acc.fired == [rule]


def test_expansion_ready_flicker_is_held_by_cooldown():
    acc = Account()
    for i in range(50):
        step(acc, "expansion_ready", "fire" if i % 2 else "rearm", T0 + i * timedelta(hours=6))
    assert acc.fired == ["expansion_ready"]


def test_expansion_ready_fires_when_already_in_expand_and_armed():
    acc = Account()
    ev = acc.run(T0, only={"expansion_ready"}, scores=snap(70, 70, "expand"))
    assert [f.rule for f in ev.firings] == ["expansion_ready"]
    assert ev.firings[0].reasons == ["In expand: CS 70, OP 70"]


def test_daily_cap_suppresses_and_reports():
    book = book_with(daily_cap_per_account=2)
    features = {
        "seat_utilisation": 0.95,
        "high_value_visits_7d": 5,
        "cross_sell_clicks_14d": 4,
        "last_usage_at": epoch(T0 - 20 * DAY),
    }
    acc = Account(book=book)
    ev = evaluate(
        account_id="acc-1",
        features=features,
        scores=snap(priority="low"),
        scores_before=None,
        cs_history=[],
        states={},
        fired_today=1,
        rules=book,
        now=T0,
    )
    # inactivity is "high" by default; the others follow the account ("low") or are "medium".
    assert [f.rule for f in ev.firings] == ["inactivity"]
    assert ev.suppressed == ["cross_sell_click", "pricing_interest", "seat_pressure"]
    # Held back, not dropped: they stay armed and fire when the cap allows.
    assert all(ev.states[r].armed for r in ev.suppressed)
    acc.states.update(ev.states)
    nxt = acc.run(T0 + DAY, features=features, scores=snap(priority="low"))
    assert [f.rule for f in nxt.firings] == ["cross_sell_click", "pricing_interest"]
    assert nxt.suppressed == ["seat_pressure"]


def test_signal_ids_are_deterministic_and_replays_repeat_them():
    inputs = _seat("fire", T0, T0)
    a = Account().run(T0, **inputs).firings[0]
    b = Account().run(T0 + timedelta(hours=3), **inputs).firings[0]  # a replay, state not saved
    other = Account(account_id="acc-2").run(T0, **inputs).firings[0]
    assert a.signal_id == b.signal_id and a.episode == b.episode == "seat_pressure:1"
    assert other.signal_id != a.signal_id


def test_survey_episode_is_the_answer_time():
    answered = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
    ev = Account().run(T0, **_detractor("fire", T0, answered))
    assert ev.firings[0].episode == "detractor:2026-06-10T08:00:00Z"


def test_reasons_carry_the_numbers():
    answered = datetime(2026, 6, 12, 8, tzinfo=UTC)
    ev = Account(book=book_with(daily_cap_per_account=None)).run(
        T0,
        features={
            "nps": 2,
            "nps_previous": 8,
            "nps_at": epoch(answered),
            "pricing_visits_7d": 3,
            "high_value_visits_7d": 3,
            "seat_utilisation": 0.9,
            "active_users_28d": 27,
            "seats": 30,
        },
        scores=snap(cs=56),
        cs_history=[(T0 - 5 * DAY, 74.0)],
    )
    reasons = {f.rule: f.reasons for f in ev.firings}
    assert reasons["detractor"] == ["NPS 2 on 2026-06-12 (was 8)"]
    assert reasons["pricing_interest"] == ["3 pricing visits in the last 7 days"]
    assert reasons["health_drop"] == ["CS fell 18 points in 14 days (74 → 56)"]
    assert reasons["seat_pressure"] == ["27 active users on 30 seats (90% of seats) in 28 days"]


def test_priority_follows_the_account_or_the_rule():
    acc = Account()
    ev = acc.run(T0, features={"seat_utilisation": 0.95}, scores=snap(priority="high"))
    assert ev.firings[0].priority == "high"  # seat_pressure: priority "account"
    ev = Account().run(T0, **_detractor("fire", T0, T0))
    assert ev.firings[0].priority == "high"  # detractor: fixed "high"
    book = book_with(seat_pressure={"priority": "low"})
    ev = Account(book=book).run(T0, features={"seat_utilisation": 0.95}, scores=snap())
    assert ev.firings[0].priority == "low"


def test_only_restricts_the_rules_evaluated():
    ev = Account().run(T0, only=set(SWEEP_RULES), **_seat("fire", T0, T0))
    assert ev.firings == [] and set(ev.states) == SWEEP_RULES


def test_disabled_rules_are_not_evaluated():
    book = book_with(seat_pressure={"enabled": False})
    ev = Account(book=book).run(T0, **_seat("fire", T0, T0))
    assert ev.firings == [] and "seat_pressure" not in ev.states


def test_missing_features_keep_the_state():
    prior = RuleState(armed=False, episode=3, last_fired_at=T0 - DAY, last_value=0.95)
    acc = Account(states={"seat_pressure": prior})
    acc.run(T0, only={"seat_pressure"}, features={"seat_utilisation": None})
    assert acc.states["seat_pressure"] == prior


def test_churn_rule_clears_after_auto_resolve_after():
    acc = Account()
    step(acc, "inactivity", "fire", T0)
    back = T0 + 2 * DAY
    assert step(acc, "inactivity", "rearm", back).cleared == []
    assert acc.states["inactivity"].cleared_since == back
    assert step(acc, "inactivity", "rearm", back + 3 * DAY - timedelta(seconds=1)).cleared == []
    assert step(acc, "inactivity", "rearm", back + 3 * DAY).cleared == ["inactivity"]
    # The band does not count as clear for a rule that has not crossed back yet.
    acc2 = Account()
    step(acc2, "usage_drop", "fire", T0)
    assert step(acc2, "usage_drop", "band", T0 + 30 * DAY).cleared == []


def test_never_fired_rules_are_not_reported_cleared():
    acc = Account()
    step(acc, "inactivity", "rearm", T0)
    assert step(acc, "inactivity", "rearm", T0 + 30 * DAY).cleared == []


def test_stale_survey_answer_does_not_fire():
    old = T0 - 31 * DAY
    assert Account().run(T0, **_upsell("fire", T0, old)).firings == []


def test_detractor_csat_and_new_answer_is_new_episode():
    acc = Account()
    first = acc.run(T0, features={"csat": 2, "csat_previous": 4, "csat_at": epoch(T0)})
    assert first.firings[0].reasons == ["CSAT 2/5 on 2026-06-12 (was 4/5)"]
    later = T0 + 20 * DAY
    feats = {"csat": 1, "csat_at": epoch(later), "nps": 3, "nps_at": epoch(later)}
    ev = acc.run(later, features=feats)
    assert len(ev.firings) == 1 and ev.firings[0].episode == "detractor:2026-07-02T09:30:00Z"


def test_renewal_rules_can_follow_the_segment():
    book = book_with(
        renewal_window={"cs_threshold": "segment"},
        renewal_at_risk={"cs_threshold": "segment", "cs_rearm_at": None},
    )
    feats = {"days_to_renewal": 80}
    ev = Account(book=book).run(T0, features=feats, scores=snap(cs=50, segment="nurture"))
    assert [f.rule for f in ev.firings] == ["renewal_window"]
    ev = Account(book=book).run(T0, features=feats, scores=snap(cs=50, segment="recover"))
    assert [f.rule for f in ev.firings] == ["renewal_at_risk"]
    assert ev.firings[0].reasons[0] == "Renewal in 80 days (on 2026-08-31)"


def test_naive_times_are_taken_as_utc():
    naive = T0.replace(tzinfo=None)
    ev = Account().run(naive, scores=snap(cs=56), cs_history=[(naive - DAY, 74.0)])
    assert [f.rule for f in ev.firings] == ["health_drop"]


def test_health_drop_counts_only_cs_inside_its_window():
    """`before` is the last published CS, which may be older than the window: the history
    (every published CS with its time) decides; `before` counts only without one."""
    old_peak = snap(cs=96)  # published 40 days ago, outside the 14 days
    recent = [(T0 - 5 * DAY, 74.0)]
    quiet = Account().run(T0, scores=snap(cs=70), scores_before=old_peak, cs_history=recent)
    assert "health_drop" not in [f.rule for f in quiet.firings]
    fresh_memory = Account().run(T0, scores=snap(cs=70), scores_before=snap(cs=90))
    assert [f.rule for f in fresh_memory.firings] == ["health_drop"]


def test_only_rule_states_that_changed_are_written_back():
    from kizashi.triggers.decide import AccountMemory
    from kizashi.triggers.outcome import Outcome

    kept, moved = RuleState(episode=2), RuleState(armed=False)
    loaded = {"acc-1": {"detractor": kept, "usage_drop": moved}}
    memory = AccountMemory(
        states={
            "detractor": RuleState(episode=2),  # equal, though another object
            "usage_drop": moved.but(armed=True),
            "inactivity": RuleState(),  # new
        }
    )
    outcome = Outcome(memories={"acc-1": memory, "acc-2": AccountMemory()}, loaded_states=loaded)
    assert outcome.changed_states() == {
        "acc-1": {"usage_drop": RuleState(armed=True), "inactivity": RuleState()}
    }
    with pytest.raises(TypeError, match="no \\['armd'\\]"):
        kept.but(armd=False)


def test_score_rules_stay_quiet_on_insufficient_data_and_raw_fact_rules_fire() -> None:
    """Issue #19: on scores of too little evidence the rules that read the scores keep their
    state and fire nothing; a detractor answer (a raw fact) fires all the same. Once there
    is evidence, the score rules read the scores again."""
    inputs = {
        "features": {"nps": 2.0, "nps_at": epoch(T0 - DAY), "days_to_renewal": 30.0},
        "cs_history": [(T0 - DAY, 90.0)],
        "scores_before": snap(cs=90, op=80, segment="expand"),
    }
    thin = Account()
    ev = thin.run(
        T0, scores=snap(cs=20, op=80, segment="insufficient_data", priority="high"), **inputs
    )
    assert [f.rule for f in ev.firings] == ["detractor"]
    reading_scores = {"expansion_ready", "health_drop", "renewal_at_risk", "renewal_window"}
    assert not reading_scores & set(ev.states)  # no reading, no state change
    # The same inputs on scores with evidence: health_drop and renewal_at_risk fire too.
    known = Account()
    ev = known.run(T0, scores=snap(cs=20, op=80, segment="recover", priority="high"), **inputs)
    assert {"detractor", "health_drop", "renewal_at_risk"} <= {f.rule for f in ev.firings}
