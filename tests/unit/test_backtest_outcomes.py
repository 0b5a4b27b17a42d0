"""`kizashi backtest --outcomes` (issue #19, item 5): on a history with planted truth the
precision and recall are the planted ones; AUC, deciles and lead times on hand-made inputs;
bad outcome lines are refused by line number."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import orjson
import pytest

from kizashi.contracts.outcomes import signal_result
from kizashi.tools import planted
from kizashi.tools.backtest import render_text
from kizashi.tools.backtest_outcomes import (
    OutcomeLine,
    auc,
    deciles,
    rule_figures,
    score_as_of,
    score_figures,
)
from kizashi.tools.calibration_chart import calibration_svg
from kizashi.tools.cli import main

# A small history (the replay walks half a year of sweeps): every group, a few of each.
GROUPS = {
    "silent_churn": 3,
    "detractor_churn": 2,
    "detractor_renews": 1,
    "silent_returns": 1,
    "seat_expand": 2,
    "upsell_expand": 1,
    "pricing_expand": 2,
    "pricing_browses": 1,
    "quiet_churn": 1,
    "quiet_expand": 1,
    "steady": 3,
}


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_precision_and_recall_are_the_planted_ones(tmp_path: Path, capsys) -> None:
    events, outcomes = planted.write(planted.build(GROUPS), tmp_path)
    chart = tmp_path / "chart.svg"
    code, out, err = backtest(
        capsys,
        *("--events", str(events), "--outcomes", str(outcomes), "--chart", str(chart)),
        "--json",
    )
    assert code == 0, err
    report = orjson.loads(out)
    section = report["outcomes"]
    rules = section["rules"]
    g = GROUPS
    lost = g["silent_churn"] + g["detractor_churn"] + g["quiet_churn"]
    expanded = g["seat_expand"] + g["upsell_expand"] + g["pricing_expand"] + g["quiet_expand"]

    def figures(rule: str) -> tuple:
        r = rules[rule]
        return r["hits"], r["misses"], r["open"], r["recalled"], r["foreseen"]

    # Silence catches the silent churners and is fooled by the accounts that come back.
    for rule in ("usage_drop", "inactivity"):
        assert figures(rule) == (g["silent_churn"], g["silent_returns"], 0, g["silent_churn"], lost)
        assert rules[rule]["precision"] == g["silent_churn"] / (
            g["silent_churn"] + g["silent_returns"]
        )
        assert rules[rule]["recall"] == g["silent_churn"] / lost
    # The saved detractor renewed: a miss, counted as averted.
    assert figures("detractor") == (
        g["detractor_churn"],
        g["detractor_renews"],
        0,
        g["detractor_churn"],
        lost,
    )
    assert rules["detractor"]["averted"] == g["detractor_renews"]
    assert figures("seat_pressure") == (g["seat_expand"], 0, 0, g["seat_expand"], expanded)
    assert figures("upsell_intent") == (g["upsell_expand"], 0, 0, g["upsell_expand"], expanded)
    assert figures("pricing_interest") == (
        g["pricing_expand"],
        g["pricing_browses"],
        0,
        g["pricing_expand"],
        expanded,
    )
    assert rules["pricing_interest"]["precision"] == 2 / 3
    low, high = (
        rules["pricing_interest"]["precision_low"],
        rules["pricing_interest"]["precision_high"],
    )
    assert 0 < low < 2 / 3 < high < 1
    # Every lead time lies in what was planted: the outcome 45-85 days after the story day,
    # the signal on it or up to three weeks after.
    for rule in ("usage_drop", "inactivity", "detractor", "seat_pressure", "pricing_interest"):
        assert 45 - 21 <= rules[rule]["lead_days_median"] <= rules[rule]["lead_days_p90"] <= 85
    # The scores on 1 April (one window before the end): every account scored, none gone yet.
    scores = section["scores"]
    assert scores["as_of"].startswith("2026-04-01") and scores["left_out"] == 0
    assert scores["accounts"] == sum(g.values())
    assert scores["churn"]["positives"] == lost
    assert scores["expansion"]["positives"] == expanded
    # The silent churners are silent by then: low CS ranks the churners first.
    assert scores["churn"]["auc"] > 0.8
    ElementTree.fromstring(chart.read_text())  # well-formed

    text = render_text(report)  # the text report of the same run
    assert "precision (95% CI)" in text and "silent-churn-01" not in text
    assert "CS against churned or contracted: AUC" in text


def test_auc_on_known_cases() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert auc([5, 5], [5, 5, 5]) == 0.5  # all ties: a coin
    # Pairs (3,1) (3,2) (2,1) win, (2,2) is a tie: 3.5 of 4.
    assert auc([3, 2], [1, 2]) == 0.875
    # (1: beats 0) + (2: ties 2, 2, beats 0) + (3: beats all three) = 1 + 2 + 3 of 9.
    assert auc([1, 2, 3], [2, 2, 0]) == pytest.approx(6 / 9)
    assert auc([1], []) is None and auc([], [1]) is None


def test_deciles_split_by_score_lowest_first() -> None:
    samples = [(float(score), score < 3) for score in range(20, 0, -1)]
    groups = deciles(samples)
    assert [g["accounts"] for g in groups] == [2] * 10
    assert (groups[0]["low"], groups[0]["high"], groups[0]["outcomes"]) == (1.0, 2.0, 2)
    assert groups[1]["rate"] == 0.0 and groups[9]["high"] == 20.0
    assert [g["accounts"] for g in deciles([(1.0, True), (2.0, False), (3.0, False)])] == [1, 1, 1]
    assert deciles([]) == []


class Fired(NamedTuple):
    rule: str
    account_id: str
    fired_at: datetime


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def outcome(account: str, kind: str, at: float) -> OutcomeLine:
    return OutcomeLine(account_id=account, kind=kind, occurred_at=day(at))


def test_lead_time_runs_from_the_first_signal_in_the_window() -> None:
    signals = [
        Fired("usage_drop", "a", day(0)),
        Fired("usage_drop", "a", day(20)),  # a second warning: the lead counts from the first
        Fired("usage_drop", "a", day(60)),  # after the churn: gone, neither hit nor miss
        Fired("usage_drop", "b", day(0)),  # churn 100 days later: outside the window, a miss
        Fired("usage_drop", "d", day(5)),
        Fired("usage_drop", "e", day(100)),
        Fired("usage_drop", "f", day(190)),  # its window runs past the horizon: open
        Fired("detractor", "c", day(1)),  # another rule
    ]
    outcomes = [
        outcome("a", "churn", 50),
        outcome("b", "churn", 100),
        outcome("c", "churn", 10),  # no usage_drop before it
        outcome("d", "contraction", 15),
        outcome("e", "churn", 130),
        outcome("e", "renewal", 120),
    ]
    figures = rule_figures(
        signals,
        outcomes,
        rule="usage_drop",
        kind="churn_risk",
        window=timedelta(days=90),
        started_at=T0,
        horizon=day(200),
    )
    assert figures["fired"] == 7
    assert (figures["hits"], figures["misses"], figures["open"], figures["after_churn"]) == (
        4,  # a at 0, a at 20, d, e (churned after a renewal: confirmed, not averted)
        1,
        1,
        1,
    )
    # Leads: a 50 days (from day 0), d 10, e 30; b's churn came too late, c's had no signal.
    assert (figures["recalled"], figures["foreseen"]) == (3, 5)
    assert figures["lead_days_median"] == 30.0 and figures["lead_days_p90"] == 50.0


def test_signal_results_are_the_contracts() -> None:
    assert signal_result("opportunity", ["expansion", "churn"]) == "won"
    assert signal_result("opportunity", ["renewal"]) is None
    assert signal_result("churn_risk", ["renewal", "contraction"]) == "confirmed"
    assert signal_result("churn_risk", ["renewal"]) == "averted"


def test_score_as_of_is_the_last_published_before() -> None:
    history = [(day(1), 50.0, 20.0), (day(5), 40.0, 25.0)]
    assert score_as_of(history, day(0)) is None
    assert score_as_of(history, day(1)) == (50.0, 20.0)
    assert score_as_of(history, day(9)) == (40.0, 25.0)


def test_bad_outcome_lines_are_refused_with_their_numbers(tmp_path: Path, capsys) -> None:
    events, _ = planted.write(planted.build({"steady": 1}), tmp_path)
    good = {"account_id": "steady-01", "kind": "churn", "occurred_at": "2026-05-01T00:00:00Z"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "kind": "upsell"}),
        "",
        json.dumps({**good, "occurred_at": "2026-05-01T00:00:00"}),  # no time zone
        json.dumps({**good, "amount": -5}),
        json.dumps([good]),
        json.dumps({**good, "note": "extra"}),
        json.dumps({k: v for k, v in good.items() if k != "account_id"}),
    ]
    bad = tmp_path / "outcomes.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = backtest(capsys, "--events", str(events), "--outcomes", str(bad))
    assert code == 2 and out == ""
    assert "Traceback" not in err
    expected = {
        2: "not JSON",
        3: "kind: Input should be 'renewal', 'churn', 'expansion' or 'contraction'",
        5: "occurred_at: Input should have timezone info",
        6: "amount: Input should be greater than or equal to 0",
        7: "not a JSON object",
        8: "note: Extra inputs are not permitted",
        9: "account_id: Field required",
    }
    for number, reason in expected.items():
        assert f"{bad}:{number}: invalid: {reason}" in err
    assert f"{bad}:1:" not in err and f"{bad}:4:" not in err
    assert "fix these lines first" in err


def test_chart_needs_outcomes_and_missing_outcomes_are_an_error(tmp_path: Path, capsys) -> None:
    events, _ = planted.write(planted.build({"steady": 1}), tmp_path)
    code, _, err = backtest(capsys, "--events", str(events), "--chart", str(tmp_path / "c.svg"))
    assert code == 2 and "--chart needs --outcomes" in err
    code, _, err = backtest(
        capsys, "--events", str(events), "--outcomes", str(tmp_path / "nope.jsonl")
    )
    assert code == 2 and "no such file" in err


def test_the_chart_escapes_its_title() -> None:
    empty = {"auc": None, "deciles": [], "positives": 0, "rate": None}
    svg = calibration_svg({"churn": empty, "expansion": empty}, title="a <b> & c")
    root = ElementTree.fromstring(svg)
    assert root.find("{http://www.w3.org/2000/svg}title").text == "a <b> & c"


def test_the_shipped_example_is_what_the_generator_writes(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "examples"
    for written in planted.write(planted.build(), tmp_path):
        assert written.read_bytes() == (shipped / written.name).read_bytes(), written.name


def test_scores_are_read_on_one_day_and_judged_on_the_window_after() -> None:
    scores = {
        "low": [(day(0), 20.0, 10.0)],
        "high": [(day(0), 80.0, 90.0), (day(40), 30.0, 10.0)],  # fell after the day: not seen
        "gone": [(day(0), 10.0, 10.0)],  # churned before the day: left out
        "late": [(day(40), 50.0, 50.0)],  # first scored after the day: left out
        "mid": [(day(0), 50.0, 50.0)],
    }
    outcomes = [
        outcome("gone", "churn", 20),
        outcome("low", "contraction", 60),
        outcome("high", "expansion", 100),
        outcome("mid", "churn", 200),  # after the window: no
    ]
    figures = score_figures(scores, outcomes, as_of=day(30), window=timedelta(days=90))
    assert (figures["accounts"], figures["left_out"]) == (3, 2)
    assert figures["churn"]["positives"] == 1 and figures["churn"]["auc"] == 1.0
    assert figures["expansion"]["positives"] == 1 and figures["expansion"]["auc"] == 1.0
    assert [g["outcomes"] for g in figures["churn"]["deciles"]] == [1, 0, 0]


def test_a_chart_into_a_missing_folder_is_refused_before_the_replay(tmp_path: Path, capsys) -> None:
    events, outcomes = planted.write(planted.build({"steady": 1}), tmp_path)
    code, out, err = backtest(
        capsys,
        *("--events", str(events), "--outcomes", str(outcomes)),
        *("--chart", str(tmp_path / "nowhere" / "c.svg")),
    )
    assert code == 2 and out == "" and "no such folder" in err
