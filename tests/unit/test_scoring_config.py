"""scoring.yaml: the packaged default loads; a bad file names the key and the problem."""

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from kizashi.runtime.yamlconfig import parse_yaml_mapping
from kizashi.scoring.config import ConfigError, load_scoring_config, parse_scoring_config

DEFAULT_TEXT = (
    resources.files("kizashi.scoring").joinpath("defaults", "scoring.yaml").read_text("utf-8")
)


def default_data() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_TEXT)


def write(tmp_path: Path, data: Any) -> Path:
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    (tmp_path / "scoring.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_packaged_default_loads() -> None:
    config = load_scoring_config(None)
    assert config.version == "2026.4"
    # Without the observed parts (counted only once a rep logs something), 100 each.
    assert config.cs.weights.total == 100 and config.op.weights.total == 100
    assert (config.segments.cs_high, config.segments.op_high) == (60, 50)
    assert config.priority.default == "low" and config.priority.rules
    assert config.changes.min_points == 1.0


def test_a_dir_without_the_file_uses_the_default(tmp_path: Path) -> None:
    assert load_scoring_config(tmp_path) == load_scoring_config(None)


def test_a_file_in_the_config_dir_wins(tmp_path: Path) -> None:
    data = default_data()
    data["version"] = "acme-7"
    data["cs"]["weights"]["nps"] = 30
    config = load_scoring_config(write(tmp_path, data))
    assert config.version == "acme-7" and config.cs.weights.nps == 30
    assert config.cs.weights.total == 118


def _set(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    data[last] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("cs.weights.usage_health", -1, "scoring.yaml: cs.weights.usage_health: must be ≥ 0"),
        ("cs.weights.usage_health", "heavy", "cs.weights.usage_health: must be a number"),
        ("cs.weights.bogus", 3, "scoring.yaml: cs.weights.bogus: unknown key"),
        ("segments.cs_high", 120, "scoring.yaml: segments.cs_high: must be ≤ 100"),
        ("segments.op_high", -5, "scoring.yaml: segments.op_high: must be ≥ 0"),
        ("version", 3, "scoring.yaml: version: must be a string"),
        ("normalise.usage_trend", {"low": 1.0, "high": 0.5}, "usage_trend: low must be < high"),
        ("missing.nps", 1.5, "scoring.yaml: missing.nps: must be ≤ 1"),
        ("priority.default", "urgent", "scoring.yaml: priority.default: must be one of"),
        ("priority.rules.0.when", {"karma": {"gte": 1}}, "rules.0.when: unknown input karma"),
        ("priority.rules.0.when", {"arr": {}}, "priority.rules.0.when.arr: needs gte or lte"),
        ("normalise.arr", {"low": 0, "high": 10}, "scoring.yaml: normalise.arr.low: must be > 0"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, path: str, value: Any, expected: str) -> None:
    data = default_data()
    _set(data, path, value)
    with pytest.raises(ConfigError) as caught:
        load_scoring_config(write(tmp_path, data))
    assert expected in str(caught.value)


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    data = default_data()
    del data["op"]["weights"]["plan_fit"]
    with pytest.raises(ConfigError, match=r"op\.weights\.plan_fit: required key is missing"):
        load_scoring_config(write(tmp_path, data))


def test_all_zero_weights_are_refused() -> None:
    data = default_data()
    data["op"]["weights"] = {name: 0 for name in data["op"]["weights"]}
    with pytest.raises(
        ConfigError,
        match=r"op\.weights: at least one weight of a part that is not observed must be > 0",
    ):
        parse_scoring_config(yaml.safe_dump(data))


def test_every_problem_is_reported_at_once() -> None:
    data = default_data()
    data["cs"]["weights"]["nps"] = -2
    data["segments"]["cs_high"] = 101
    message = str(pytest.raises(ConfigError, parse_scoring_config, yaml.safe_dump(data)).value)
    assert "cs.weights.nps" in message and "segments.cs_high" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cs: [unclosed", "scoring.yaml: not valid YAML"),
        ("", "scoring.yaml: must be a mapping at the top level"),
        ("- a list", "scoring.yaml: must be a mapping at the top level"),
        # YAML itself keeps the last of two equal keys: the second would silently win.
        (
            "changes:\n  min_points: 1\n  min_points: 5\n",
            "(?s)scoring.yaml: not valid YAML: duplicate key 'min_points'.*line 3",
        ),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_scoring_config(write(tmp_path, text))


def test_yaml_merge_keys_may_be_overridden() -> None:
    data = parse_yaml_mapping("base: &b {x: 1, y: 0}\nother:\n  <<: *b\n  y: 2\n", "x.yaml")
    assert data["other"] == {"x": 1, "y": 2}


def test_plan_names_match_whatever_their_case() -> None:
    text = DEFAULT_TEXT.replace("    pro: 0.5\n", "    ' Pro ': 0.5\n")
    assert text != DEFAULT_TEXT
    assert parse_scoring_config(text, "scoring.yaml").normalise.plans["pro"] == 0.5
    twice = DEFAULT_TEXT.replace("    pro: 0.5\n", "    pro: 0.5\n    PRO: 0.1\n")
    with pytest.raises(ConfigError, match="normalise.plans: 'PRO' names the same plan"):
        parse_scoring_config(twice, "scoring.yaml")
