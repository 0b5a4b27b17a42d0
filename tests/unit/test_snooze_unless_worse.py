"""Snooze unless worse (issue #20): the decision to reopen a snoozed signal, its reason, the
rules.yaml key, and the notifier delivering the reopened signal once more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import ChurnRiskSignal, signal_adapter
from kizashi.notifier.consumer import delivery_id_for
from kizashi.triggers.rules import RulesConfigError, load_rules_config
from kizashi.triggers.worse import (
    MEASURES,
    measures_at,
    measures_of,
    reopened_payload,
    reopenings,
    watching_rules,
)

RULES = load_rules_config(None)
SNOOZED_AT = datetime(2026, 11, 30, 15, 20, tzinfo=UTC)
NOW = SNOOZED_AT + timedelta(hours=5)


def _row(rule: str, measures: dict, account: str = "acme", signal: str = "s1") -> dict:
    return {
        "signal_id": signal,
        "account_id": account,
        "rule": rule,
        "snoozed_at": SNOOZED_AT,
        "measures": measures,
    }


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_packaged_rules_watch_cs_and_usage() -> None:
    assert watching_rules(RULES) == ["usage_drop", "health_drop", "renewal_at_risk"]
    assert RULES.rules.health_drop.reopen_if_worse_by == 10
    assert RULES.rules.usage_drop.reopen_if_worse_by == 40
    assert (RULES.rules.health_drop.MEASURE, RULES.rules.usage_drop.MEASURE) == ("cs", "usage")
    parameters = {r["name"]: r["parameters"] for r in RULES.describe()}
    assert parameters["health_drop"]["reopen_if_worse_by"] == 10
    assert "reopen_if_worse_by" not in parameters["inactivity"]


@pytest.mark.parametrize(
    ("at_snooze", "now", "worse"),
    [(58, 49, False), (58, 48.01, False), (58, 48, True), (58, 46, True), (58, 70, False)],
)
def test_cs_worse_by_points(at_snooze, now, worse) -> None:
    assert MEASURES["cs"].worsened(at_snooze, now, 10) is worse


@pytest.mark.parametrize(
    ("at_snooze", "now", "worse"),
    [(100, 81, False), (100, 80, True), (40, 31.9, True), (0, 0, False), (None, 0, False)],
)
def test_usage_worse_by_per_cent(at_snooze, now, worse) -> None:
    assert MEASURES["usage"].worsened(at_snooze, now, 20) is worse


def test_an_unknown_value_is_never_worse() -> None:
    assert not MEASURES["cs"].worsened(None, 10, 10)
    assert not MEASURES["cs"].worsened(58, None, 10)


def test_the_reason_says_what_got_worse_since_when() -> None:
    found = reopenings(
        [_row("health_drop", {"cs": 58.2, "usage": 30})], {"acme": {"cs": 46.4}}, RULES
    )
    assert [(r.signal_id, r.reason, r.headline) for r in found] == [
        ("s1", "CS 58 → 46 since snoozed on 2026-11-30", "CS 58 → 46 since snoozed")
    ]
    # A silent weekend (usage_7d × e^(-3/7): down 35 %) is not worse; half the usage is.
    weekend = reopenings([_row("usage_drop", {"usage": 120.0})], {"acme": {"usage": 78.0}}, RULES)
    assert weekend == []
    usage = reopenings([_row("usage_drop", {"usage": 120.0})], {"acme": {"usage": 60.0}}, RULES)
    assert [r.reason for r in usage] == [
        "Usage in the last 7 days 120 → 60 (down 50%) since snoozed on 2026-11-30"
    ]


def test_only_the_rules_measure_of_the_same_account_counts() -> None:
    rows = [
        _row("health_drop", {"cs": 58, "usage": 100}),  # CS the same, usage fell: no
        _row("usage_drop", {"cs": 58, "usage": 100}, signal="s2"),  # usage fell: yes
        _row("health_drop", {"cs": 58}, account="other", signal="s3"),  # not in the batch
        _row("renewal_at_risk", {"cs": 30}, signal="s4"),  # CS up: no
    ]
    now = {"acme": {"cs": 58, "usage": 10}}
    assert [r.signal_id for r in reopenings(rows, now, RULES)] == ["s2"]


def test_a_rule_without_an_amount_keeps_its_snooze(tmp_path: Path) -> None:
    rules = load_rules_config(
        _write(tmp_path, "rules:\n  health_drop:\n    reopen_if_worse_by: null\n")
    )
    assert "health_drop" not in watching_rules(rules)
    assert reopenings([_row("health_drop", {"cs": 58})], {"acme": {"cs": 10}}, rules) == []
    off = load_rules_config(_write(tmp_path, "rules:\n  health_drop:\n    enabled: false\n"))
    assert reopenings([_row("health_drop", {"cs": 58})], {"acme": {"cs": 10}}, off) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  inactivity:\n    reopen_if_worse_by: 5\n",
            "rules.inactivity.reopen_if_worse_by",
        ),
        ("rules:\n  usage_drop:\n    reopen_if_worse_by: 100\n", "must be < 100"),
        ("rules:\n  health_drop:\n    reopen_if_worse_by: 0\n", "must be > 0"),
    ],
)
def test_the_amount_is_only_for_rules_with_a_measure_and_in_range(tmp_path, text, message) -> None:
    with pytest.raises(RulesConfigError, match=message):
        load_rules_config(_write(tmp_path, text))


def test_measures_as_a_change_shows_them() -> None:
    scores = ScoreSnapshot(cs=61.5, op=40, segment="nurture", priority="low", confidence=0.9)
    assert measures_of(scores, {"usage_7d": 12.0}) == {"cs": 61.5, "usage": 12.0}
    thin = scores.model_copy(update={"segment": "insufficient_data"})
    assert measures_of(thin, {}) == {"cs": None, "usage": None}


def test_measures_at_the_snooze_move_usage_to_the_moment() -> None:
    latest = {
        "computed_at": (NOW - timedelta(days=7)).isoformat(),
        "after": {"cs": 58.0, "segment": "at_risk"},
        "features": {"usage_7d": 100.0, "usage_28d": 400.0},
        "account": {"renewal_date": None},
    }
    measures = measures_at(latest, NOW)
    assert measures is not None and measures["cs"] == 58.0
    assert 30 < measures["usage"] < 40  # a week of silence: e^-1 of it left
    assert measures_at(None, NOW) is None


def _signal() -> ChurnRiskSignal:
    return ChurnRiskSignal(
        signal_id="s1",
        rule="health_drop",
        account_id="acme",
        priority="high",
        episode="health_drop:1",
        fired_at=SNOOZED_AT - timedelta(days=1),
        reasons=["CS fell 16 points in 14 days (74 → 58)"],
        suggested_play="Book a health check.",
        headline="CS down 16 points in 14 days",
        account=AccountFacts(account_id="acme"),
        scores=ScoreSnapshot(cs=58, op=40, segment="at_risk", priority="high"),
    )


def test_the_reopened_signal_leads_with_the_reason_and_is_delivered_once_more() -> None:
    original = _signal()
    [reopening] = reopenings([_row("health_drop", {"cs": 58})], {"acme": {"cs": 46}}, RULES)
    payload = reopened_payload(original.model_dump(mode="json"), reopening, NOW)
    again = signal_adapter.validate_python(payload)
    assert again.signal_id == original.signal_id and again.reopened_at == NOW
    assert again.reasons == [reopening.reason, *original.reasons]
    assert again.headline == "CS 58 → 46 since snoozed"
    first = delivery_id_for(original.signal_id, "slack", original.reopened_at)
    assert first == delivery_id_for(original.signal_id, "slack")  # as before issue #20
    assert delivery_id_for(again.signal_id, "slack", again.reopened_at) != first
    # A replay of the same reopening is the same delivery.
    assert delivery_id_for(again.signal_id, "slack", again.reopened_at) == delivery_id_for(
        "s1", "slack", NOW
    )
