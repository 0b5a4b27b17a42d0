"""Corrections (issue #20): which late events scoring reports (within the watermark, as
spans), whether a sent `inactivity` held given them, the retraction the consumer derives from
a rule's state, and the follow-up's words in each channel, escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kizashi.contracts.scores import LateEvents
from kizashi.contracts.signals import ChurnRiskSignal
from kizashi.notifier.correction import Correction, corrected_delivery, message_id
from kizashi.scoring.config import Watermarks
from kizashi.scoring.late import late_spans
from kizashi.triggers import corrections
from kizashi.triggers.change import RuleInput
from kizashi.triggers.decide import AccountMemory, decide
from kizashi.triggers.rules import load_rules_config
from tests.unit.scoring_events import event

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RULES = load_rules_config(None)


def span(first: datetime, last: datetime, kind: str = "product_usage", count: int = 3):
    return LateEvents(type=kind, source="api", first_at=first, last_at=last, count=count)


# --------------------------------------------------------------- did the condition hold


def test_late_usage_inside_the_silence_means_inactivity_did_not_hold():
    why = corrections.inactivity_did_not_hold(NOW, 14, [span(NOW - 5 * DAY, NOW - 4 * DAY)])
    assert why == "product usage on 2026-11-29 arrived late (3 events)"


def test_late_usage_before_the_silence_or_after_the_firing_changes_nothing():
    before = span(NOW - 20 * DAY, NOW - 14 * DAY)  # ends exactly where the 14 days begin
    after = span(NOW + timedelta(seconds=1), NOW + DAY)
    assert corrections.inactivity_did_not_hold(NOW, 14, [before, after]) is None


def test_late_events_of_another_type_change_nothing():
    visits = span(NOW - 3 * DAY, NOW - 2 * DAY, kind="web_visit")
    assert corrections.inactivity_did_not_hold(NOW, 14, [visits]) is None


def test_a_span_across_the_whole_silence_names_the_firing_day():
    # A span has an event within the hour of every instant it covers: usage in the window.
    why = corrections.inactivity_did_not_hold(NOW, 14, [span(NOW - 30 * DAY, NOW + DAY, count=1)])
    assert why == "product usage on 2026-12-03 arrived late (1 event)"


# --------------------------------------------------------------- scoring's late spans


def used(at: datetime, source: str | None = None):
    """Product usage at `at`, received by ingest at NOW."""
    extra = {} if source is None else {"source": source}
    return event("product_usage", at, action="login", received_at=NOW.isoformat(), **extra)


def test_only_late_events_within_their_sources_watermark_are_reported():
    marks = Watermarks(default_hours=48, sources={"import": 24 * 30})
    usage = [
        # On time (received within ten minutes): not late.
        used(NOW - timedelta(minutes=9)),
        # Two days late from the API, within 48 h; three days late: beyond the watermark.
        used(NOW - 47 * timedelta(hours=1)),
        used(NOW - 3 * DAY),
        # From the batch import, 20 days late but within its 30 days.
        used(NOW - 20 * DAY, source="import"),
    ]
    spans = late_spans(usage, marks)
    assert [(s["source"], s["first_at"], s["count"]) for s in spans] == [
        ("import", NOW - 20 * DAY, 1),
        (None, NOW - 47 * timedelta(hours=1), 1),
    ]


def test_a_usage_span_carries_the_quantity_the_counters_add():
    spans = late_spans([used(NOW - 3 * DAY), used(NOW - 3 * DAY)], Watermarks(default_hours=96))
    assert [(s["count"], s["quantity"]) for s in spans] == [(2, 2.0)]


def test_late_events_an_hour_or_less_apart_make_one_span():
    times = [NOW - 5 * DAY + i * timedelta(minutes=50) for i in range(4)]
    times.append(NOW - 2 * DAY)
    usage = [used(t) for t in times]
    spans = late_spans(usage, Watermarks(default_hours=24 * 7))
    assert [(s["first_at"], s["last_at"], s["count"]) for s in spans] == [
        (times[0], times[3], 4),
        (times[4], times[4], 1),
    ]


# --------------------------------------------------------------- from the rule's state


def change(at: datetime, last_usage: datetime, late: list[LateEvents] = ()) -> RuleInput:
    snapshot = {"cs": 50.0, "op": 40.0, "segment": "nurture", "priority": "medium"}
    return RuleInput.model_validate(
        {
            "account_id": "acme",
            "computed_at": at,
            "before": snapshot,
            "after": snapshot,
            "account": {"account_id": "acme", "name": "Acme"},
            "features": {
                "last_usage_at": last_usage.timestamp(),
                "days_since_usage": (at - last_usage) / DAY,
            },
            "late": [s.model_dump() for s in late],
        }
    )


def test_a_delayed_usage_batch_retracts_the_inactivity_it_cancels_and_rearms_the_rule():
    memory = AccountMemory()
    fired = decide(change(NOW, NOW - 15 * DAY), memory, RULES, now=NOW).signals
    assert [s.rule for s in fired] == ["inactivity"]

    later = NOW + DAY
    delayed = change(later, NOW - 3 * DAY, [span(NOW - 4 * DAY, NOW - 3 * DAY)])
    decide(delayed, memory, RULES, now=later)
    retractions, reset, pending = corrections.check(delayed, memory.states, RULES)

    assert [(r.signal_id, r.rule, r.fired_at) for r in retractions] == [
        (fired[0].signal_id, "inactivity", NOW)
    ]
    state = reset["inactivity"]
    assert state.armed and state.last_fired_at is None and state.episode == 1
    assert pending == []


def test_late_events_that_do_not_reach_the_silence_retract_nothing():
    memory = AccountMemory()
    decide(change(NOW, NOW - 15 * DAY), memory, RULES, now=NOW)
    older = change(NOW + DAY, NOW - 15 * DAY, [span(NOW - 16 * DAY, NOW - 15 * DAY)])
    decide(older, memory, RULES, now=NOW + DAY)
    assert corrections.check(older, memory.states, RULES) == ([], {}, [])


# --------------------------------------------------------------- usage_drop, on kept figures

# As of the firing: 2 usage in 7 days against 20 in 28, a trend of 0.4 (under 0.5).
KEPT = {"usage_7d": 2.0, "usage_28d": 20.0}


def usage(first: datetime, last: datetime, quantity: float, count: int = 1) -> LateEvents:
    return LateEvents(
        type="product_usage", first_at=first, last_at=last, count=count, quantity=quantity
    )


def test_enough_late_usage_before_a_usage_drop_means_it_did_not_hold():
    late = [usage(NOW - 2 * DAY, NOW - DAY, quantity=10, count=10)]
    why = corrections.usage_drop_did_not_hold(NOW, 0.5, KEPT, late)
    # Least in 7 days: 10·e^(-2/7); most in 28: 10·e^(-1/28); trend ≥ 1.28.
    assert why == (
        "product usage up to 2026-12-02 arrived late (10 events): usage in the 7 days before "
        "it fired was at 128% or more of the 28-day baseline rate, not under 50%"
    )


def test_too_little_late_usage_leaves_the_usage_drop_standing():
    late = [usage(NOW - 6 * DAY, NOW - 6 * DAY, quantity=0.5)]
    assert corrections.usage_drop_did_not_hold(NOW, 0.5, KEPT, late) is None


def test_late_usage_across_the_firing_counts_at_its_least():
    # Some of it may have come after the firing: it adds nothing to the 7-day side.
    late = [usage(NOW - DAY, NOW + DAY, quantity=50, count=50)]
    assert corrections.usage_drop_did_not_hold(NOW, 0.5, KEPT, late) is None


def drop_change(at: datetime, late: list[LateEvents] = ()) -> RuleInput:
    snapshot = {"cs": 50.0, "op": 40.0, "segment": "nurture", "priority": "medium"}
    return RuleInput.model_validate(
        {
            "account_id": "acme",
            "computed_at": at,
            "before": snapshot,
            "after": snapshot,
            "account": {"account_id": "acme", "name": "Acme"},
            "features": {**KEPT, "usage_trend": 0.4, "last_usage_at": (at - DAY).timestamp()},
            "late": [s.model_dump() for s in late],
        }
    )


def test_a_usage_drop_keeps_its_counters_and_late_usage_settles_it():
    memory = AccountMemory()
    decision = decide(drop_change(NOW), memory, RULES, now=NOW)
    fired = [s for s in decision.signals if s.rule == "usage_drop"]
    assert len(fired) == 1 and decision.measures == {fired[0].signal_id: KEPT}

    later = NOW + DAY
    delayed = drop_change(later, [usage(NOW - 2 * DAY, NOW - DAY, quantity=10, count=10)])
    decide(delayed, memory, RULES, now=later)
    retractions, _, pending = corrections.check(delayed, memory.states, RULES)
    assert retractions == [] and [p.signal_id for p in pending] == [fired[0].signal_id]
    # The figures come from the signal's row; without them (or retracted) nothing is settled.
    assert corrections.settle(pending, {}) == []
    settled = corrections.settle(pending, decision.measures)
    assert [(r.rule, r.signal_id, r.fired_at) for r in settled] == [
        ("usage_drop", fired[0].signal_id, NOW)
    ]


# --------------------------------------------------------------- the follow-up's words


def retracted_signal(name: str) -> ChurnRiskSignal:
    snapshot = {"cs": 50.0, "op": 40.0, "segment": "nurture", "priority": "high"}
    return ChurnRiskSignal.model_validate(
        {
            "signal_id": "s-1",
            "rule": "inactivity",
            "account_id": "acme",
            "priority": "high",
            "episode": "inactivity:1",
            "fired_at": NOW,
            "reasons": ["No product usage for 14 days"],
            "suggested_play": "Call.",
            "account": {"account_id": "acme", "name": name},
            "scores": snapshot,
            "retracted": {"at": NOW + DAY, "reason": "product usage on <2026-12-01> arrived late"},
        }
    )


def test_the_correction_says_which_rule_for_whom_on_which_day_and_why_escaped():
    words = Correction.of(retracted_signal("<b>Acme</b> & Co\nBcc: x@evil"))
    assert words.text() == (
        "Correction: inactivity for <b>Acme</b> & Co Bcc: x@evil on 2026-12-03 did not hold: "
        "product usage on <2026-12-01> arrived late"
    )
    slack = words.slack()["text"]
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co" in slack and "<b>" not in slack
    assert "&lt;2026-12-01&gt;" in slack
    html = words.html()
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co" in html and "<b>" not in html


def test_an_alerts_message_id_comes_from_its_delivery_so_the_correction_can_reply():
    assert message_id("d-1") == "<d-1@kizashi>"
    assert corrected_delivery("d-1:correction") == "d-1"
    assert corrected_delivery("d-1") is None
