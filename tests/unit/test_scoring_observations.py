"""Reps' observations in the scoring state and scores (issue #18): folded in any order to the
same state, the phase computed from the evidence kept, the observed parts' sentences, and an
account no rep wrote about scoring exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kizashi.contracts.observations import rep_observation_adapter
from kizashi.runtime.phases import load_phase_config
from kizashi.scoring.config import OBSERVED_PARTS, load_scoring_config
from kizashi.scoring.features import AccountState
from kizashi.scoring.pipeline import rescore
from kizashi.scoring.repository import StoredAccount

CONFIG = load_scoring_config(None)
PHASES = load_phase_config(None)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def observation(kind: str, at: datetime, author: str = "ann@x.io", **fields: Any):
    return rep_observation_adapter.validate_python(
        {
            "type": "rep_observation",
            "account_id": "acme",
            "event_id": f"{kind}-{at.timestamp()}-{author}-{sorted(fields.items())}",
            "occurred_at": at,
            "received_at": at,
            "author": author,
            "kind": kind,
            **fields,
        }
    )


CRITERIA = sorted(PHASES.criteria)
_pieces = st.lists(
    st.tuples(
        st.sampled_from(CRITERIA),
        st.integers(0, 500),
        st.sampled_from(["ann@x.io", "bo@x.io"]),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(_pieces, st.randoms(use_true_random=False))
def test_evidence_in_any_order_makes_the_same_state_and_phase(pieces, rnd) -> None:
    events = [
        observation("phase_evidence", NOW - d * DAY, author, criterion=c) for c, d, author in pieces
    ]
    events += [
        observation("satisfaction_with_rep", NOW - d * DAY, author, satisfaction=1 + d % 5)
        for _, d, author in pieces[:6]
    ]
    one, other = AccountState(), AccountState()
    for event in events:
        one.apply(event)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    for event in shuffled:
        other.apply(event)
    assert one.to_json() == other.to_json()
    a = rescore(StoredAccount("acme", one.to_json(), None), [], config=CONFIG, now=NOW)
    b = rescore(StoredAccount("acme", other.to_json(), None), [], config=CONFIG, now=NOW)
    assert (a.scored.phase, a.scored.cs, a.scored.op) == (b.scored.phase, b.scored.cs, b.scored.op)


def test_an_account_without_observations_scores_as_before_they_existed() -> None:
    state = AccountState()
    first = rescore(StoredAccount("acme", None, None), [], config=CONFIG, now=NOW)
    lines = {
        line["component"]: line
        for line in first.scored.breakdown
        if line["component"] != "confidence"  # each index's confidence line (issue #19)
    }
    assert len(lines) == 17  # the observed parts are left out, line and weight
    assert OBSERVED_PARTS.isdisjoint(lines)
    # The index is over the other parts only: their points add up to it, out of 100.
    cs_points = sum(line["points"] for line in first.scored.breakdown if line["index"] == "cs")
    assert abs(cs_points - first.scored.cs) < 0.05
    assert state.to_json().keys() == AccountState.from_json(state.to_json()).to_json().keys()
    assert "obs" not in state.to_json() and "evidence" not in state.to_json()


def test_observed_parts_name_the_author_and_the_day_and_move_the_scores() -> None:
    bare = rescore(StoredAccount("acme", None, None), [], config=CONFIG, now=NOW)
    happy = rescore(
        StoredAccount("acme", None, None),
        [
            observation("satisfaction_with_rep", NOW - DAY, satisfaction=5),
            observation("outcome_realised", NOW - DAY, outcome="yes"),
            observation("policy_change", NOW - 2 * DAY, direction="expansion"),
        ],
        config=CONFIG,
        now=NOW,
    )
    lines = {line["component"]: line for line in happy.scored.breakdown}
    assert lines["rep_satisfaction"]["explanation"] == (
        "Satisfaction with the rep 5/5, logged by ann@x.io on 2026-11-30"
    )
    assert lines["outcome_realised"]["explanation"] == (
        "Outcome realised: yes, logged by ann@x.io on 2026-11-30"
    )
    assert lines["policy_change"]["explanation"] == (
        "Policy change toward expansion, logged by ann@x.io on 2026-11-29"
    )
    assert happy.scored.cs > bare.scored.cs and happy.scored.op > bare.scored.op


def test_the_phase_feeds_op_and_offers_land_best_from_phase_three() -> None:
    def op_at(criteria: list[str]) -> tuple[int, float]:
        events = [observation("phase_evidence", NOW - DAY, criterion=c) for c in criteria]
        outcome = rescore(StoredAccount("acme", None, None), events, config=CONFIG, now=NOW)
        line = next(x for x in outcome.scored.breakdown if x["component"] == "relationship_phase")
        return outcome.scored.phase, line["points"]

    ladder = [c.id for p in PHASES.phases for c in p.criteria]
    by_phase = {p.phase: [c.id for q in PHASES.phases[: p.phase + 1] for c in q.criteria]
                for p in PHASES.phases}  # fmt: skip
    # Phase 0 with evidence logged (one of phase 1's two criteria): counted, at 0 points.
    by_phase[0] = [PHASES.phases[1].criteria[0].id]
    points = [op_at(by_phase[n]) for n in range(5)]
    assert [phase for phase, _ in points] == [0, 1, 2, 3, 4]
    three = rescore(
        StoredAccount("acme", None, None),
        [observation("phase_evidence", NOW - DAY, criterion=c) for c in by_phase[3]],
        config=CONFIG,
        now=NOW,
    )
    line = next(x for x in three.scored.breakdown if x["component"] == "relationship_phase")
    assert line["explanation"] == (
        "Relationship phase 3, newest evidence logged by ann@x.io on 2026-11-30; "
        "an offer lands best from phase 3"
    )
    assert points[0][1] == 0 < points[1][1] < points[2][1] < points[3][1] == points[4][1]
    assert len(ladder) == len(set(ladder))


def test_next_check_comes_when_evidence_expires() -> None:
    replied = NOW - timedelta(days=PHASES.expiry_days) + 3 * DAY
    events = [
        observation("phase_evidence", replied, criterion="contact_replied"),
        observation("phase_evidence", NOW - DAY, criterion="meeting_agreed"),
    ]
    outcome = rescore(StoredAccount("acme", None, None), events, config=CONFIG, now=NOW)
    assert outcome.scored.phase == 1
    expires = replied + timedelta(days=PHASES.expiry_days)
    assert outcome.scored.next_check_at is not None
    assert outcome.scored.next_check_at <= expires + timedelta(seconds=1)
    later = rescore(
        StoredAccount.after(outcome.scored), [], config=CONFIG, now=expires + timedelta(seconds=2)
    )
    assert (later.scored.phase, later.scored.phase_before) == (0, 1)
    assert later.change is not None and later.change.phase == 0


def test_a_redelivered_observation_is_kept_once() -> None:
    state = AccountState()
    event = observation("customer_pain", NOW, pain="urgent")
    state.apply(event)
    state.apply(event)
    assert len(state.obs["customer_pain"]) == 1
    for d in range(5):
        state.apply(observation("customer_pain", NOW - d * DAY - DAY, pain="urgent"))
    assert [e[0] for e in state.obs["customer_pain"]] == sorted(
        (e[0] for e in state.obs["customer_pain"]), reverse=True
    )
    assert len(state.obs["customer_pain"]) == 3
