"""rules.yaml: the packaged catalogue, overlays, and errors that name the rule and the key."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from kizashi.triggers.rules import (
    RULE_NAMES,
    RulesConfigError,
    format_duration,
    load_rules_config,
    parse_duration,
)

CATALOGUE = {
    "expansion_ready": "opportunity",
    "upsell_intent": "opportunity",
    "pricing_interest": "opportunity",
    "cross_sell_click": "opportunity",
    "seat_pressure": "opportunity",
    "renewal_window": "opportunity",
    "new_decision_maker": "opportunity",
    "competitor_trouble": "opportunity",
    "customer_pain": "opportunity",
    "relocation_or_policy_change": "opportunity",
    "renewal_timing": "opportunity",
    "support_surge": "opportunity",
    "fiscal_year_end": "opportunity",
    "usage_drop": "churn_risk",
    "inactivity": "churn_risk",
    "detractor": "churn_risk",
    "health_drop": "churn_risk",
    "renewal_at_risk": "churn_risk",
    "key_person_left": "churn_risk",
}


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_packaged_catalogue_is_complete():
    book = load_rules_config(None)
    assert {name: rule.kind for name, rule in book.items()} == CATALOGUE
    assert RULE_NAMES == tuple(CATALOGUE)
    assert book.daily_cap_per_account == 3
    for name, rule in book.items():
        assert rule.enabled and rule.suggested_play.endswith(".")
        assert rule.cooldown > timedelta(0)
        if rule.kind == "churn_risk":
            assert rule.auto_resolve_after is not None, name
    assert book.rules.seat_pressure.threshold == 0.9 and book.rules.seat_pressure.rearm_at == 0.8
    assert book.rules.renewal_window.cs_threshold == 60
    assert book.rules.renewal_at_risk.cs_threshold == 40


def test_describe_is_json_able():
    described = load_rules_config(None).describe()
    json.dumps(described)
    assert [d["name"] for d in described] == list(CATALOGUE)
    seat = next(d for d in described if d["name"] == "seat_pressure")
    assert seat["cooldown"] == "30d" and seat["priority"] == "account"
    assert seat["condition"] == "seat_utilisation >= 0.9"
    assert seat["rearm"] == "seat_utilisation < 0.8"
    assert seat["parameters"] == {"threshold": 0.9, "rearm_at": 0.8}
    drop = next(d for d in described if d["name"] == "usage_drop")
    assert drop["condition"] == "usage_trend < 0.5" and drop["auto_resolve_after"] == "7d"


def test_missing_file_means_defaults(tmp_path: Path):
    assert load_rules_config(tmp_path) == load_rules_config(None)


def test_file_overlays_the_defaults_key_by_key(tmp_path: Path):
    book = load_rules_config(
        write(
            tmp_path,
            "daily_cap_per_account: null\n"
            "rules:\n"
            "  pricing_interest:\n    threshold: 5\n    cooldown: 1d12h\n"
            "  inactivity:\n    enabled: false\n",
        )
    )
    assert book.daily_cap_per_account is None
    assert book.rules.pricing_interest.threshold == 5
    assert book.rules.pricing_interest.rearm_at == 1  # kept from the default
    assert book.rules.pricing_interest.cooldown == timedelta(hours=36)
    assert "inactivity" not in dict(book.enabled())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  pricing_interest:\n    threshold: lots\n",
            "rules.yaml: rules.pricing_interest.threshold: must be a number",
        ),
        (
            "rules:\n  seat_pressure:\n    rearm_at: 0.95\n",
            "rules.yaml: rules.seat_pressure.rearm_at: must be at most threshold (0.9)",
        ),
        (
            "rules:\n  usage_drop:\n    rearm_at: 0.3\n",
            "rules.yaml: rules.usage_drop.rearm_at: must be at least threshold (0.5)",
        ),
        (
            "rules:\n  inactivity:\n    cooldown: two weeks\n",
            "rules.yaml: rules.inactivity.cooldown: must be a duration like",
        ),
        (
            "rules:\n  detractor:\n    priority: urgent\n",
            "rules.yaml: rules.detractor.priority: must be 'high', 'medium', 'low' or 'account'",
        ),
        (
            "rules:\n  detractor:\n    kind: opportunity\n",
            "rules.yaml: rules.detractor.kind: must be 'churn_risk'",
        ),
        (
            "rules:\n  health_drop:\n    treshold: 10\n",
            "rules.yaml: rules.health_drop.treshold: unknown key",
        ),
        (
            "rules:\n  vibes_check:\n    enabled: true\n",
            "rules.yaml: rules.vibes_check: unknown rule",
        ),
        (
            "rules:\n  renewal_window:\n    cs_threshold: high\n",
            "rules.yaml: rules.renewal_window.cs_threshold: must be a number (0-100) or 'segment'",
        ),
        (
            "rules:\n  renewal_window:\n    min_days: 130\n",
            "rules.yaml: rules.renewal_window.max_days: must be at least min_days (130)",
        ),
        (
            "rules:\n  upsell_intent:\n    enabled: maybe\n",
            "rules.yaml: rules.upsell_intent.enabled: must be true or false",
        ),
        (
            "rules:\n  upsell_intent:\n    threshold: 11\n",
            "rules.yaml: rules.upsell_intent.threshold: must be <= 10",
        ),
        ("daily_cap_per_account: -1\n", "rules.yaml: daily_cap_per_account: must be >= 0"),
        ("- just\n- a list\n", "rules.yaml: must be a mapping at the top level"),
        ("rules: [unclosed\n", "rules.yaml: cannot read"),
    ],
)
def test_errors_name_the_rule_and_the_key(tmp_path: Path, text: str, message: str):
    with pytest.raises(RulesConfigError) as exc:
        load_rules_config(write(tmp_path, text))
    # A custom file is named by its path.
    assert str(exc.value).startswith(f"{tmp_path}/{message}")


def test_a_key_given_twice_is_an_error_not_the_last_one_winning(tmp_path: Path):
    text = "rules:\n  detractor:\n    enabled: true\n    enabled: false\n"
    with pytest.raises(RulesConfigError, match="(?s)duplicate key 'enabled'.*line 4"):
        load_rules_config(write(tmp_path, text))


def test_durations_round_trip():
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1w") == timedelta(days=7)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert format_duration(timedelta(hours=36)) == "1d12h"
    assert format_duration(timedelta(0)) == "0s"
    for bad in ("", "7", "d7", "7y", 7):
        with pytest.raises(ValueError):
            parse_duration(bad)
