"""The recycle process's pure parts (issue #21): when each "not now" reason returns (calendar
months, the next fiscal year, an OP rise, at once and to whom), the reasons a resolution
accepts, the API body's bounds, rules.yaml's `recycle` section, and the returning signal:
its deterministic id, its "came back" reason and its owner."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.resolutions import NOT_NOW, RESOLUTION_REASONS, resolution_problem
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.triggers.api import ResolveBody
from kizashi.triggers.recycle import (
    add_months,
    came_back,
    fiscal_year_end_month,
    next_fiscal_year_start,
    park,
    return_signal,
    returned_signal_id,
)
from kizashi.triggers.rules import RulesConfigError, load_rules_config
from kizashi.triggers.rules.catalogue import RecycleConfig

SEPT_1 = datetime(2026, 9, 1, 14, 30, tzinfo=UTC)
CONFIG = RecycleConfig()


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (at(2026, 9, 1, 14, 30), 3, at(2026, 12, 1, 14, 30)),
        (at(2026, 11, 15), 2, at(2027, 1, 15)),
        (at(2026, 1, 31), 1, at(2026, 2, 28)),  # the month is shorter: its last day
        (at(2028, 1, 31), 1, at(2028, 2, 29)),  # a leap year
        (at(2026, 12, 31), 24, at(2028, 12, 31)),
    ],
)
def test_months_are_calendar_months(start, months, expected) -> None:
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("facts", "month"),
    [
        ({"fiscal_year_end_month": 3}, 3),
        ({"fiscal_year_end_month": "12"}, 12),
        ({"fiscal_year_end_month": 0}, None),
        ({"fiscal_year_end_month": 13}, None),
        ({"fiscal_year_end_month": True}, None),
        ({"fiscal_year_end_month": "March"}, None),
        ({"fiscal_year_end_month": 3.0}, 3),  # scoring's features are floats
        ({"fiscal_year_end_month": "3.0"}, 3),  # as JSON text out of PostgreSQL
        ({"fiscal_year_end_month": 3.5}, None),
        ({"fiscal_year_end_month": None}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_fiscal_year_end_is_read_defensively(facts, month) -> None:
    assert fiscal_year_end_month(facts) == month


@pytest.mark.parametrize(
    ("end_month", "resolved", "expected"),
    [
        (3, SEPT_1, at(2027, 4, 1)),  # the year ends in March: back on 1 April
        (3, at(2026, 2, 1), at(2026, 4, 1)),  # still ahead this calendar year
        (3, at(2026, 4, 1), at(2027, 4, 1)),  # on the day itself: the next one
        (12, SEPT_1, at(2027, 1, 1)),  # December: the new year
        (8, SEPT_1, at(2027, 9, 1)),  # it ended in August: September next year
    ],
)
def test_no_budget_returns_at_the_next_fiscal_year(end_month, resolved, expected) -> None:
    start, known = next_fiscal_year_start({"fiscal_year_end_month": end_month}, resolved)
    assert (start, known) == (expected, True)


def test_no_budget_without_a_fiscal_year_returns_a_year_on() -> None:
    assert next_fiscal_year_start({}, SEPT_1) == (at(2027, 9, 1, 14, 30), False)
    assert next_fiscal_year_start(None, SEPT_1, 6) == (at(2027, 3, 1, 14, 30), False)


def test_each_not_now_reason_parks_with_its_return_rule() -> None:
    common = {"now": SEPT_1, "account": {}, "op": 42.0, "owner": "dana@x.example"}
    timing = park("timing", 3, config=CONFIG, **common)
    assert timing is not None and timing.returns_at == at(2026, 12, 1, 14, 30)
    assert timing.op_target is None and timing.return_to == "dana@x.example"
    budget = park("no_budget", None, config=CONFIG, **{**common, "account": {}})
    assert budget is not None and budget.returns_at == at(2027, 9, 1, 14, 30)
    assert budget.fiscal_year_known is False
    need = park("no_need", None, config=CONFIG, **common)
    assert need is not None and need.returns_at is None
    assert (need.op_at_set, need.op_target) == (42.0, 52.0)
    fresh = park("not_contacted", None, config=CONFIG, **common)
    assert fresh is not None and fresh.returns_at == SEPT_1
    assert fresh.return_to == "dana@x.example"
    other = RecycleConfig.model_validate({"not_contacted": {"reassign_to": "Sam@X.example"}})
    handed = park("not_contacted", None, config=other, **common)
    assert handed is not None and handed.return_to == "sam@x.example"
    for final in ("won", "lost_to_competitor"):
        assert park(final, None, config=CONFIG, **common) is None
    assert {"not_contacted", "timing", "no_budget", "no_need"} == NOT_NOW


@pytest.mark.parametrize(
    ("kind", "reason", "months", "problem"),
    [
        ("opportunity", None, None, "needs a reason"),
        ("opportunity", "maybe", None, "unknown reason 'maybe'"),
        ("opportunity", "timing", None, "needs 'months'"),
        ("opportunity", "timing", 25, "1 to 24"),
        ("opportunity", "timing", 0, "1 to 24"),
        ("opportunity", "no_need", 3, "only with reason 'timing'"),
        ("churn_risk", "won", None, "without a reason"),
        ("churn_risk", None, 2, "without a reason"),
    ],
)
def test_a_resolution_that_does_not_fit_is_refused(kind, reason, months, problem) -> None:
    found = resolution_problem(kind, reason, months)
    assert found is not None and problem in found


def test_the_resolutions_that_fit() -> None:
    for reason in RESOLUTION_REASONS:
        months = 3 if reason == "timing" else None
        assert resolution_problem("opportunity", reason, months) is None
    assert resolution_problem("opportunity", "timing", 24) is None
    assert resolution_problem("churn_risk", None, None) is None


def test_the_resolve_body_takes_known_reasons_and_bounded_months() -> None:
    assert ResolveBody.model_validate({"reason": "timing", "months": 3}).months == 3
    assert ResolveBody.model_validate({}).reason is None
    for body in ({"reason": "later"}, {"reason": "timing", "months": 25}, {"months": "soon"}):
        with pytest.raises(ValidationError):
            ResolveBody.model_validate(body)


def test_rules_yaml_recycle_defaults_and_overlay(tmp_path: Path) -> None:
    assert load_rules_config(None).recycle == RecycleConfig()
    assert CONFIG.no_need.op_rise == 10 and CONFIG.not_contacted.reassign_to is None
    (tmp_path / "rules.yaml").write_text(
        "recycle:\n  no_need:\n    op_rise: 15\n  not_contacted:\n    reassign_to: sdr@x.example\n"
    )
    overlaid = load_rules_config(tmp_path).recycle
    assert overlaid.no_need.op_rise == 15 and overlaid.no_budget.fallback_months == 12
    assert overlaid.not_contacted.reassign_to == "sdr@x.example"
    (tmp_path / "rules.yaml").write_text("recycle:\n  no_need:\n    op_rise: 0\n")
    with pytest.raises(RulesConfigError, match="op_rise"):
        load_rules_config(tmp_path)


def _entry(**more) -> dict:
    return {
        "signal_id": "sig-1",
        "account_id": "acme",
        "rule": "pricing_interest",
        "reason": "timing",
        "months": 3,
        "set_at": SEPT_1,
        "set_by": "dana@x.example",
        "owner": "dana@x.example",
        "return_to": "dana@x.example",
        "fiscal_year_known": None,
        "op_at_set": None,
        "op_target": None,
        **more,
    }


def test_the_came_back_reason_says_why() -> None:
    assert came_back(_entry())[0] == (
        "came back: timing was 3 months, set on 2026-09-01 by dana@x.example"
    )
    assert came_back(_entry(months=1))[0].startswith("came back: timing was 1 month,")
    need = came_back(_entry(reason="no_need", months=None, op_at_set=40.0, op_target=50.0), 53)
    assert need[0].endswith("OP rose from 40 to 53 (asked: 50)")
    handed = came_back(_entry(reason="not_contacted", months=None, return_to="sam@x.example"))
    assert handed[0].endswith("now for sam@x.example (was dana@x.example)")
    # Free text stays on one line (each channel escapes it; it is never markup here).
    odd = came_back(_entry(set_by="<b>eve</b>\n@x"))[0]
    assert odd.endswith("by <b>eve</b> @x")


def test_the_returning_signal_is_deterministic_and_goes_to_whom_it_returns_to() -> None:
    account = AccountFacts(account_id="acme", owner_email="dana@x.example", owner_slack="U1")
    scores = ScoreSnapshot(cs=70, op=55, segment="expand", priority="high")
    now = at(2026, 12, 1, 15)
    signal = return_signal(
        _entry(), account=account, scores=scores, phase=2, now=now, config=CONFIG
    )
    again = return_signal(
        _entry(), account=account, scores=scores, phase=2, now=at(2026, 12, 2), config=CONFIG
    )
    assert signal.signal_id == again.signal_id == returned_signal_id("acme", "sig-1")
    assert (signal.rule, signal.kind, signal.priority) == ("recycled", "opportunity", "high")
    assert signal.reasons[0].startswith("came back: timing was 3 months")
    assert signal.account.owner_slack == "U1" and signal.suggested_play == CONFIG.suggested_play
    handed = return_signal(
        _entry(reason="not_contacted", months=None, return_to="sam@x.example"),
        account=account,
        scores=scores,
        phase=2,
        now=now,
        config=CONFIG,
    )
    assert handed.account.owner_email == "sam@x.example" and handed.account.owner_slack is None


def test_the_came_back_text_is_escaped_in_every_channel() -> None:
    from kizashi.notifier.render import render_email, render_slack

    account = AccountFacts(account_id="acme", name="Acme & <Co>", owner_email="dana@x.example")
    scores = ScoreSnapshot(cs=70, op=55, segment="expand", priority="high")
    signal = return_signal(
        _entry(set_by="<script>alert(1)</script> <!channel>"),
        account=account,
        scores=scores,
        phase=None,
        now=at(2026, 12, 1),
        config=CONFIG,
    )
    slack = json.dumps(render_slack(signal, ack_url=None, snooze_url=None))
    assert "<script>" not in slack and "<!channel>" not in slack
    assert "came back: timing was 3 months" in slack and "&lt;script&gt;" in slack
    email = render_email(signal, ack_url=None, snooze_url=None)
    assert "<script>" not in email.html and "&lt;script&gt;alert(1)" in email.html
    assert "came back: timing was 3 months, set on 2026-09-01 by <script>" in email.text


def test_the_stage_funnel_counts_and_rates() -> None:
    from kizashi.console.stages import funnel

    assert funnel({"signals": 8, "acted_on": 6, "won": 3}) == {
        "signals": 8,
        "acted_on": 6,
        "won": 3,
        "acted_on_rate": 0.75,
        "won_of_acted_rate": 0.5,
        "won_rate": 0.375,
    }
    empty = funnel({})
    assert empty["signals"] == 0 and empty["acted_on_rate"] is None
    assert empty["won_of_acted_rate"] is None and empty["won_rate"] is None
    assert funnel({"signals": 3})["won_of_acted_rate"] is None


def test_a_reassigned_return_is_not_filled_in_with_the_crm_owners_slack() -> None:
    """The notifier fills in an owner the signal's snapshot lacks from scoring's facts, but
    never the CRM owner's Slack handle onto a signal sent to someone else (not_contacted's
    reassign_to): Sam's alert must not mention Dana."""
    from kizashi.notifier.deliver import filled_in

    crm = {"name": "Acme", "owner_email": "Dana@vendor.example", "owner_slack": "@dana"}
    reassigned = AccountFacts(account_id="acme", owner_email="sam@vendor.example")
    assert filled_in(reassigned, crm).owner_slack is None
    assert filled_in(reassigned, crm).name == "Acme"
    same = AccountFacts(account_id="acme", owner_email="dana@vendor.example")
    assert filled_in(same, crm).owner_slack == "@dana"
    unknown = AccountFacts(account_id="acme")
    assert filled_in(unknown, crm).owner_slack == "@dana"
