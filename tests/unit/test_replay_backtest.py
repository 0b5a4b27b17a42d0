"""`kizashi backtest`: the example history's report, invalid lines reported by number, a
rules.yaml tried from a folder, JSON output and the progress bar."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from kizashi.tools.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "backtest-events.jsonl"


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_example_history_fires_what_docs_signals_md_shows(capsys) -> None:
    code, out, _ = backtest(capsys, "--events", str(EXAMPLE), "--json")
    assert code == 0
    report = orjson.loads(out)
    assert (report["events"], report["accounts"], report["invalid_lines"]) == (1945, 12, [])
    fired = {
        name: sorted(rule["accounts"]) for name, rule in report["rules"].items() if rule["signals"]
    }
    # No expansion_ready: the three accounts' OP only touched the expand cut-off (segments do
    # not flap, scoring.yaml's margins and min_dwell; docs/signals.md says so under the output).
    assert fired == {
        "upsell_intent": ["acme-corp"],
        "pricing_interest": ["initech", "tyrell"],
        "cross_sell_click": ["cyberdyne"],
        "seat_pressure": ["stark-industries"],
        "renewal_window": ["wonka"],
        "usage_drop": ["globex", "oscorp", "soylent"],
        "inactivity": ["globex", "oscorp", "soylent"],
        "detractor": ["umbrella"],
        "health_drop": ["globex", "hooli", "oscorp", "soylent"],
        "renewal_at_risk": ["hooli"],
    }
    assert report["rules"]["pricing_interest"]["accounts"]["initech"] == [
        "2026-03-06T13:25:55+00:00",
        "2026-03-25T15:37:18+00:00",
    ]
    assert report["signals"] == 19
    # docs/signals.md shows this very output.
    docs = (EXAMPLE.parents[1] / "docs" / "signals.md").read_text()
    _, text, _ = backtest(capsys, "--events", str(EXAMPLE))
    assert text.startswith(f"Backtest of {EXAMPLE}\n")
    assert text.split("\n", 1)[1].strip() in docs


def test_invalid_lines_are_reported_by_number_and_skipped(tmp_path: Path, capsys) -> None:
    good = {
        "type": "survey_response",
        "account_id": "acme",
        "event_id": "e1",
        "occurred_at": "2026-03-02T10:00:00Z",
        "survey_id": "s",
        "nps": 1,
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "event_id": "e2", "nps": 11}),
        "",
        json.dumps([1, 2]),
        json.dumps({**good, "event_id": "e3", "occurred_at": None}),
        json.dumps(good),  # the same event id again: applied once
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    code, out, err = backtest(capsys, "--events", str(events), "--json")
    assert code == 0
    report = orjson.loads(out)
    expected = [
        (2, "not JSON ("),
        (3, "survey_response.nps: "),
        (5, "not a JSON object"),
        (6, "occurred_at: required"),
    ]
    invalid = report["invalid_lines"]
    assert [i["line"] for i in invalid] == [line for line, _ in expected]
    assert all(
        i["error"].startswith(start) for i, (_, start) in zip(invalid, expected, strict=True)
    )
    assert (
        f"{events}:3: skipped: survey_response.nps: Input should be less than or equal to 10" in err
    )
    assert (report["events"], report["duplicates"], report["signals"]) == (2, 1, 1)
    assert report["rules"]["detractor"]["accounts"] == {"acme": ["2026-03-02T10:00:00+00:00"]}


def test_a_rules_folder_is_laid_over_the_defaults(tmp_path: Path, capsys) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  inactivity: {enabled: false}\n  pricing_interest: {threshold: 2, rearm_at: 1}\n"
    )
    code, out, _ = backtest(capsys, "--events", str(EXAMPLE), "--rules", str(tmp_path), "--json")
    rules = orjson.loads(out)["rules"]
    assert code == 0
    assert rules["inactivity"]["signals"] == 0 and rules["inactivity"]["enabled"] is False
    # At 2 visits acme-corp's two product-page visits count too, and initech fires sooner.
    assert sorted(rules["pricing_interest"]["accounts"]) == ["acme-corp", "initech", "tyrell"]
    assert rules["pricing_interest"]["accounts"]["initech"][0] < "2026-03-06T13:25:55"


def test_a_bad_rules_file_is_refused_with_the_rule_and_key(tmp_path: Path, capsys) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  inactivity: {threshold: soon}\n")
    code, out, err = backtest(capsys, "--events", str(EXAMPLE), "--rules", str(tmp_path))
    assert code == 2 and out == ""
    assert "rules.inactivity.threshold: must be a number" in err


def test_a_missing_file_is_an_error_not_a_crash(tmp_path: Path, capsys) -> None:
    code, _, err = backtest(capsys, "--events", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "no such file" in err


def test_the_progress_bar_goes_to_stderr(capsys) -> None:
    code, out, err = backtest(capsys, "--events", str(EXAMPLE), "--progress")
    assert code == 0
    assert "replaying [" in err and "1,945/1,945 events" in err
    assert "[" not in out.splitlines()[0]
