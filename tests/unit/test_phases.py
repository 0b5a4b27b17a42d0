"""Relationship phases (issue #18): phases.yaml, and the phase an account's evidence gives."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizashi.runtime.phases import (
    PHASES_FILE,
    Evidence,
    PhaseConfigError,
    load_phase_config,
    phase_of,
)

CONFIG = load_phase_config(None)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PHASE_3 = {
    "dm_shared_competitor_pricing",
    "designated_vendor",
    "met_decision_maker_10min",
    "lead_asks_advice",
}


def criteria_up_to(phase: int) -> list[str]:
    return [c.id for p in CONFIG.phases[: phase + 1] for c in p.criteria]


def evidence(ids, at=NOW - timedelta(days=10), author="rep@example.com"):
    return [Evidence(criterion, at, author) for criterion in ids]


def test_the_default_ladder():
    assert [(p.phase, p.name) for p in CONFIG.phases] == [
        (0, "Prospecting"),
        (1, "Meeting possible"),
        (2, "Trust built"),
        (3, "Proposition"),
        (4, "Partner"),
    ]
    assert {c.id for c in CONFIG.phases[3].criteria} == PHASE_3
    assert all(p.criteria for p in CONFIG.phases[1:])
    assert CONFIG.expiry_days == 365


def test_no_evidence_is_prospecting_and_the_next_actions_are_phase_1s_criteria():
    standing = phase_of(CONFIG, [], NOW)
    assert (standing.phase, standing.name, standing.met) == (0, "Prospecting", ())
    assert [c.id for c in standing.missing] == [c.id for c in CONFIG.phases[1].criteria]


def test_a_phase_needs_every_lower_phase():
    # All of phase 3's criteria, but phase 2 is missing one: the account is at phase 1.
    ids = [*criteria_up_to(1), "met_in_person", "customer_shared_plans", *PHASE_3]
    standing = phase_of(CONFIG, evidence(ids), NOW)
    assert standing.phase == 1
    assert [c.id for c in standing.missing] == ["customer_introduced_colleague"]
    # Evidence for the skipped phase is kept and counts once phase 2 is met.
    assert PHASE_3 <= {m.criterion for m in standing.met}
    ids.append("customer_introduced_colleague")
    assert phase_of(CONFIG, evidence(ids), NOW).phase == 3


def test_met_criteria_say_by_whom_and_when():
    at = NOW - timedelta(days=3)
    standing = phase_of(CONFIG, [Evidence("contact_replied", at, "ann@example.com")], NOW)
    [met] = standing.met
    assert (met.criterion, met.author, met.occurred_at, met.phase) == (
        "contact_replied",
        "ann@example.com",
        at,
        1,
    )
    assert met.expires_at == at + timedelta(days=365)


def test_evidence_expires_unless_renewed_and_per_criterion_expiry_applies():
    old = NOW - timedelta(days=400)
    ids = criteria_up_to(2)
    assert phase_of(CONFIG, evidence(ids, at=old), NOW).phase == 0
    renewed = evidence(ids, at=old) + evidence(ids, at=NOW - timedelta(days=1))
    assert phase_of(CONFIG, renewed, NOW).phase == 2
    # customer_introduced_colleague lasts 730 days: at 400 days it still counts.
    mixed = evidence([c for c in ids if c != "customer_introduced_colleague"]) + evidence(
        ["customer_introduced_colleague"], at=old
    )
    assert phase_of(CONFIG, mixed, NOW).phase == 2


def test_evidence_dated_after_now_does_not_count_yet():
    later = NOW + timedelta(days=1)
    assert phase_of(CONFIG, evidence(criteria_up_to(1), at=later), NOW).phase == 0


def test_a_top_phase_has_nothing_missing():
    standing = phase_of(CONFIG, evidence(criteria_up_to(4)), NOW)
    assert (standing.phase, standing.missing) == (4, ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("phases: []", "phases.yaml: phases: must hold at least 1 item"),
        (
            "phases: [{phase: 0, name: A}, {phase: 2, name: B}]",
            "phases.yaml: phases: must be numbered 0, 1, 2, … in order, got [0, 2]",
        ),
        (
            "phases: [{phase: 0, name: A, criteria: [{id: x, question: q}]},"
            " {phase: 1, name: B, criteria: [{id: x, question: r}]}]",
            "phases.yaml: phases: criterion 'x' is named twice",
        ),
        ("expiry_days: 0\nphases: [{phase: 0, name: A}]", "expiry_days: must be ≥ 1"),
        ("phases: [{phase: 0, name: A, colour: red}]", "phases.0.colour: unknown key"),
    ],
)
def test_a_broken_phases_yaml_names_the_problem(text, message):
    with pytest.raises(PhaseConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        PHASES_FILE.parse(text)


def test_an_operators_phases_yaml_replaces_the_default(tmp_path):
    (tmp_path / "phases.yaml").write_text(
        "expiry_days: 30\nphases:\n  - {phase: 0, name: Cold}\n"
        '  - {phase: 1, name: Warm, criteria: [{id: lunch, question: "Had lunch?"}]}\n'
    )
    config = load_phase_config(tmp_path)
    assert config.criteria == {"lunch"}
    assert phase_of(config, evidence(["lunch"], at=NOW - timedelta(days=31)), NOW).phase == 0


ALL_CRITERIA = sorted(CONFIG.criteria)
evidence_items = st.builds(
    Evidence,
    criterion=st.sampled_from(ALL_CRITERIA),
    occurred_at=st.integers(min_value=0, max_value=800).map(lambda d: NOW - timedelta(days=d)),
    author=st.sampled_from(["ann@example.com", "bob@example.com"]),
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(evidence_items, max_size=40), seed=st.randoms(use_true_random=False))
def test_the_phase_does_not_depend_on_the_order_evidence_arrives_in(items, seed):
    shuffled = list(items)
    seed.shuffle(shuffled)
    assert phase_of(CONFIG, items, NOW) == phase_of(CONFIG, shuffled, NOW)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(evidence_items, max_size=40),
    days=st.integers(min_value=1, max_value=800),
)
def test_time_passing_never_raises_the_phase_and_full_expiry_lowers_it_to_0(items, days):
    now = phase_of(CONFIG, items, NOW).phase
    assert phase_of(CONFIG, items, NOW + timedelta(days=days)).phase <= now
    # Once every criterion's evidence is older than its expiry, only phase 0 is left.
    assert phase_of(CONFIG, items, NOW + timedelta(days=731)).phase == 0


@settings(max_examples=100, deadline=None)
@given(phase=st.integers(min_value=1, max_value=4), age=st.integers(min_value=0, max_value=364))
def test_expiry_of_one_criterion_lowers_the_phase_below_it(phase, age):
    at = NOW - timedelta(days=age)
    items = evidence(criteria_up_to(4), at=NOW - timedelta(days=1))
    dropped = CONFIG.phases[phase].criteria[0]
    items = [e for e in items if e.criterion != dropped.id]
    items.append(Evidence(dropped.id, at, "ann@example.com"))
    assert phase_of(CONFIG, items, NOW).phase == 4
    expired = at + CONFIG.expiry(dropped)
    # Every other criterion renewed the day before: only `dropped` has expired.
    renewed = [Evidence(e.criterion, expired - timedelta(days=1), e.author) for e in items[:-1]]
    assert phase_of(CONFIG, items + renewed, expired).phase == phase - 1
