"""The six rules on reps' observations (issue #18): what each reads, the reasons that name
the observation (its fields, author and day, user text quoted on one line), and the clock
that brings renewal_timing's window to the sweep."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from kizashi.contracts.scores import ObservationFact, ScoresChanged, ScoreSnapshot
from kizashi.triggers.decide import AccountMemory, clock_view, decide, sweep_decide
from kizashi.triggers.engine import evaluate
from kizashi.triggers.rules import load_rules_config
from kizashi.triggers.schedule import next_sweep_at

T0 = datetime(2026, 6, 12, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
BOOK = load_rules_config(None)
REP = "ann@reps.example"


def fact(kind: str, at: datetime = T0, author: str = REP, **fields: Any) -> ObservationFact:
    return ObservationFact(
        observation_id=f"{kind}-{at.timestamp()}", kind=kind, occurred_at=at, author=author,
        fields=fields,
    )  # fmt: skip


def fire(rule: str, *facts: ObservationFact, now: datetime = T0) -> list[list[str]]:
    evaluation = evaluate(
        account_id="acme",
        features={},
        scores=ScoreSnapshot(cs=50, op=50, segment="nurture", priority="low"),
        scores_before=None,
        cs_history=[],
        states={},
        fired_today=0,
        rules=BOOK,
        now=now,
        only={rule},
        observations=sorted(facts, key=lambda f: f.occurred_at, reverse=True),
    )
    return [firing.reasons for firing in evaluation.firings]


def person(change: str, dm: bool, role: str = "CFO", name: str = "Dana Reyes") -> dict:
    return {"person": name, "role": role, "change": change, "is_decision_maker": dm}


def test_key_person_left_names_the_person_role_author_and_day() -> None:
    [reasons] = fire("key_person_left", fact("key_person_change", **person("left", True)))
    assert reasons == [
        "'Dana Reyes' ('CFO'), a decision maker, left",
        f"Logged by '{REP}' on 2026-06-12",
    ]


def test_key_person_left_counts_a_champion_but_not_anyone() -> None:
    champion = fact("key_person_change", **person("left", False, role="Project Champion"))
    assert fire("key_person_left", champion)[0][0].endswith("a champion, left")
    assert fire("key_person_left", fact("key_person_change", **person("left", False))) == []
    assert fire("key_person_left", fact("key_person_change", **person("joined", True))) == []


def test_an_observation_past_max_age_is_not_acted_on() -> None:
    old = fact("key_person_change", T0 - BOOK.rules.key_person_left.max_age - DAY)
    old = old.model_copy(update={"fields": person("left", True)})
    assert fire("key_person_left", old) == []


def test_user_text_in_a_reason_is_quoted_on_one_line_and_clipped() -> None:
    hostile = fact(
        "competitor_trouble",
        competitor="<script>alert(1)</script>\n*bold*",
        what="x" * 500,
    )
    [reasons] = fire("competitor_trouble", hostile)
    assert "\n" not in reasons[0]
    # Plain text (each channel escapes it), one line, at most 120 characters of the rep's words.
    assert reasons[0].startswith("Competitor '<script>alert(1)</script> *bold*': 'xxx")
    assert len(reasons[0]) < 200 and reasons[0].endswith("…'")


def test_new_decision_maker_customer_pain_and_policy() -> None:
    joined = fact("key_person_change", **person("joined", True, name="Lee Park", role="COO"))
    assert (
        fire("new_decision_maker", joined)[0][0] == "'Lee Park' ('COO') joined as a decision maker"
    )
    assert fire("new_decision_maker", fact("key_person_change", **person("joined", False))) == []
    assert fire("customer_pain", fact("customer_pain", pain="inexperienced_staff"))[0][0] == (
        "Customer pain: staff new to the job"
    )
    assert BOOK.rules.customer_pain.suggested_play.startswith("Help first")
    assert (
        fire("relocation_or_policy_change", fact("policy_change", direction="expansion"))[0][0]
        == "Policy change toward expansion"
    )
    assert (
        fire("relocation_or_policy_change", fact("policy_change", direction="cost_cutting")) == []
    )
    assert (
        fire("relocation_or_policy_change", fact("relocation", moving_on="2026-09-01"))[0][0]
        == "Relocating on 2026-09-01"
    )


def test_the_newest_observation_of_a_kind_decides() -> None:
    older = fact("key_person_change", T0 - 2 * DAY, **person("left", True))
    newer = fact("key_person_change", T0 - DAY, **person("joined", True, name="Lee Park"))
    # The newer one does not match key_person_left: the older one still does (within max_age).
    assert fire("key_person_left", older, newer)[0][0].startswith("'Dana Reyes'")
    assert fire("new_decision_maker", older, newer)[0][0].startswith("'Lee Park'")


def _change(observations: list[ObservationFact], at: datetime) -> ScoresChanged:
    snapshot = {"cs": 60, "op": 50, "segment": "nurture", "priority": "low"}
    return ScoresChanged.model_validate(
        {
            "account_id": "acme",
            "computed_at": at,
            "config_version": "t",
            "before": None,
            "after": snapshot,
            "breakdown": [],
            "account": {"account_id": "acme"},
            "features": {},
            "observations": [o.model_dump(mode="json") for o in observations],
            "phase": 3,
        }
    )


def test_renewal_timing_is_found_by_the_sweep_two_to_four_months_before() -> None:
    rule = BOOK.rules.renewal_timing
    due = date(2027, 1, 31)
    logged = fact("renewal_timing", T0, due_date=due.isoformat())
    memory, change = AccountMemory(), _change([logged], T0)
    # As the consumer decides: with the message's text, keeping only its clock view.
    first = decide(change, memory, BOOK, now=T0, message=change.model_dump_json().encode())
    assert [s.rule for s in first.signals] == []  # 233 days away
    # The clock view keeps the due date, so the sweep is asked to come at the window.
    assert memory.latest is not None and memory.latest["observations"][0]["fields"] == {
        "due_date": due.isoformat()
    }
    opens = datetime(2026, 10, 1, tzinfo=UTC)  # 31 Jan 2027 less 122 days
    assert (due - opens.date()).days == rule.max_days
    assert memory.next_sweep_at == opens
    # As the sweep reads it: the whole change from the row.
    swept = AccountMemory(
        latest=_change([logged], T0).model_dump(mode="json"), states=memory.states
    )
    decision = sweep_decide(swept, BOOK, now=opens + timedelta(hours=1))
    [signal] = decision.signals
    assert signal.rule == "renewal_timing" and signal.phase == 3
    assert signal.reasons == [
        f"Due on {due.isoformat()}, in {rule.max_days} days",
        f"Logged by '{REP}' on 2026-06-12",
    ]
    # Once inside, the next edge is the window's end; the same observation does not fire again.
    assert swept.next_sweep_at == datetime(2026, 12, 3, tzinfo=UTC)
    again = sweep_decide(swept, BOOK, now=opens + 10 * DAY)
    assert again.signals == []


def test_next_sweep_at_ignores_accounts_without_a_due_date() -> None:
    latest = clock_view(_change([fact("customer_pain", pain="urgent")], T0))
    assert "observations" not in latest
    assert next_sweep_at(latest=latest, states={}, fired_today=0, rules=BOOK, now=T0) is None


@pytest.mark.parametrize("rule", ["key_person_left", "new_decision_maker", "renewal_timing"])
def test_no_observation_is_unknown_not_clear(rule: str) -> None:
    assert fire(rule) == []
