"""History arriving (rules.yaml `backfill`; docs/signals.md#history-arriving): midway through a
backfill an account looks silent, or its usage looks fallen, only because the rest of its
history has not been read yet. The rules that measure usage against the clock hold their state
on such a change and are judged by the sweep once the history has settled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kizashi.contracts.scores import ScoresChanged
from kizashi.triggers.decide import AccountMemory, decide, sweep_decide
from kizashi.triggers.rules import RulesConfigError, load_rules_config, parse_rules_config
from kizashi.triggers.rules.catalogue import read_default_rules

BOOK = load_rules_config(None)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def _change(*, last_usage: datetime, newest_event: datetime | None, at: datetime = NOW):
    return ScoresChanged.model_validate(
        {
            "account_id": "acme",
            "computed_at": at,
            "config_version": "t",
            "before": None,
            "after": {"cs": 60, "op": 50, "segment": "nurture", "priority": "high"},
            "breakdown": [],
            "account": {"account_id": "acme", "name": "Acme"},
            "features": {"last_usage_at": last_usage.timestamp()},
            "newest_event_at": newest_event,
        }
    )


def _rules(decision) -> list[str]:
    return [signal.rule for signal in decision.signals]


def test_a_live_change_with_old_usage_fires_inactivity() -> None:
    memory = AccountMemory()
    change = _change(last_usage=NOW - 20 * DAY, newest_event=NOW - timedelta(minutes=5))
    assert _rules(decide(change, memory, BOOK, now=NOW)) == ["inactivity"]


def test_history_arriving_holds_inactivity_and_the_settled_sweep_judges_it() -> None:
    # An account whose whole history is old: imported, and genuinely silent for 20 days.
    memory = AccountMemory()
    change = _change(last_usage=NOW - 20 * DAY, newest_event=NOW - 20 * DAY)
    assert _rules(decide(change, memory, BOOK, now=NOW)) == []
    assert memory.states.get("inactivity") is None  # held: no reading, no state
    settled = NOW + BOOK.backfill.settle
    assert memory.next_sweep_at == settled
    # The sweep reads the whole change from its row; it is the present, not history.
    swept = AccountMemory(latest=change.model_dump(mode="json"), states=memory.states)
    assert _rules(sweep_decide(swept, BOOK, now=settled)) == ["inactivity"]


def test_a_backfill_midway_is_no_alarm_once_the_rest_arrives() -> None:
    # The demo's "busy and happy" account: four weeks of history, oldest first.
    memory = AccountMemory()
    for days_ago in (27, 20, 13, 6, 1.1):
        newest = NOW - days_ago * DAY
        decision = decide(_change(last_usage=newest, newest_event=newest), memory, BOOK, now=NOW)
        assert _rules(decision) == [], days_ago
    last = _change(last_usage=NOW - 1.1 * DAY, newest_event=NOW - 1.1 * DAY)
    swept = AccountMemory(latest=last.model_dump(mode="json"), states=memory.states)
    assert _rules(sweep_decide(swept, BOOK, now=NOW + BOOK.backfill.settle)) == []


def test_history_arriving_is_judged_against_older_than() -> None:
    backfill = BOOK.backfill
    assert backfill.older_than == DAY and backfill.settle == timedelta(minutes=1)
    assert not backfill.arriving(None, NOW)  # a change no event caused (a rescore)
    assert not backfill.arriving(NOW - DAY, NOW)
    assert backfill.arriving(NOW - DAY - timedelta(seconds=1), NOW)


def test_backfill_keys_are_validated() -> None:
    data = read_default_rules()
    tuned = parse_rules_config({**data, "backfill": {"older_than": "6h", "settle": "5m"}})
    assert tuned.backfill.older_than == timedelta(hours=6)
    with pytest.raises(RulesConfigError, match="backfill"):
        parse_rules_config({**data, "backfill": {"older_than": "6h", "settel": "5m"}})
