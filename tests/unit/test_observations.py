"""The rep_observation contract (issue #18): each kind's fields, strict types, the note's
limit, its own topic, and what ingest's `accept` says about bad observations."""

from datetime import UTC, date, datetime

import orjson
import pytest
from pydantic import ValidationError

from kizashi.contracts.events import input_event_adapter
from kizashi.contracts.limits import MAX_NOTE_LENGTH
from kizashi.contracts.observations import (
    OBSERVATION_KINDS,
    KeyPersonChange,
    PhaseEvidence,
    RenewalTiming,
    ingest_event_adapter,
    rep_observation_adapter,
)
from kizashi.contracts.topics import ALL_TOPICS, CONSUMED_BY, INGEST_TOPICS, REP_OBSERVATIONS
from kizashi.ingest.accept import accept

NOW = datetime(2026, 6, 1, tzinfo=UTC)
VALID = {
    "renewal_timing": {"due_date": "2027-03-31"},
    "key_person_change": {
        "person": "Ann Lee",
        "role": "CFO",
        "change": "left",
        "is_decision_maker": True,
    },
    "relocation": {"moving_on": "2026-09-01"},
    "policy_change": {"direction": "expansion"},
    "competitor_trouble": {"competitor": "Initech", "what": "their rep was replaced"},
    "customer_pain": {"pain": "inexperienced_staff"},
    "satisfaction_with_rep": {"satisfaction": 4},
    "outcome_realised": {"outcome": "partly"},
    "phase_evidence": {"criterion": "designated_vendor"},
}


def observation(kind: str, **fields) -> dict:
    return {
        "type": "rep_observation",
        "account_id": "acme",
        "author": "Rep@Example.com",
        "kind": kind,
        "note": "heard at the quarterly review",
        **VALID[kind],
        **fields,
    }


def test_every_kind_has_an_example():
    assert set(VALID) == set(OBSERVATION_KINDS)


@pytest.mark.parametrize("kind", OBSERVATION_KINDS)
def test_each_kind_parses_and_round_trips(kind):
    event = ingest_event_adapter.validate_python(observation(kind))
    assert event.kind == kind
    assert event.author == "rep@example.com"  # users' emails are lower-case
    again = rep_observation_adapter.validate_json(event.__pydantic_serializer__.to_json(event))
    assert again == event


def test_structured_fields_are_typed():
    renewal = ingest_event_adapter.validate_python(observation("renewal_timing"))
    assert isinstance(renewal, RenewalTiming) and renewal.due_date == date(2027, 3, 31)
    change = ingest_event_adapter.validate_python(observation("key_person_change"))
    assert isinstance(change, KeyPersonChange) and change.is_decision_maker is True


@pytest.mark.parametrize(
    ("kind", "fields", "where"),
    [
        ("key_person_change", {"is_decision_maker": "yes"}, "is_decision_maker"),
        ("key_person_change", {"change": "moved"}, "change"),
        ("policy_change", {"direction": "growth"}, "direction"),
        ("customer_pain", {"pain": "bored"}, "pain"),
        ("satisfaction_with_rep", {"satisfaction": 6}, "satisfaction"),
        ("satisfaction_with_rep", {"satisfaction": "4"}, "satisfaction"),
        ("satisfaction_with_rep", {"satisfaction": True}, "satisfaction"),
        ("outcome_realised", {"outcome": "maybe"}, "outcome"),
        ("renewal_timing", {"due_date": "soon"}, "due_date"),
        ("phase_evidence", {"criterion": ""}, "criterion"),
        ("phase_evidence", {"note": "x" * (MAX_NOTE_LENGTH + 1)}, "note"),
        ("phase_evidence", {"author": "not-an-email"}, "author"),
        ("phase_evidence", {"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_fields_are_refused_by_name(kind, fields, where):
    result = accept([observation(kind, **fields)], source="test", now=NOW)
    assert result.records == []
    assert [r.field for r in result.rejected] == [where]


@pytest.mark.parametrize("kind", ["key_person_change", "competitor_trouble", "phase_evidence"])
def test_a_missing_structured_field_is_named(kind):
    raw = observation(kind)
    missing = next(iter(VALID[kind]))
    del raw[missing]
    [rejection] = accept([raw], source="test", now=NOW).rejected
    assert (rejection.field, rejection.reason) == (missing, "Field required")


def test_a_note_at_the_limit_is_accepted():
    raw = observation("phase_evidence", note="é" * MAX_NOTE_LENGTH)
    assert len(accept([raw], source="test", now=NOW).records) == 1


def test_an_unknown_or_missing_kind_is_named():
    raw = {**observation("relocation"), "kind": "gossip"}
    [unknown] = accept([raw], source="t", now=NOW).rejected
    assert unknown.field == "kind"
    assert unknown.reason.startswith(
        "unknown observation kind: 'gossip' is not configured; expected one of renewal_timing"
    )
    raw = observation("relocation")
    del raw["kind"]
    [missing] = accept([raw], source="t", now=NOW).rejected
    assert (missing.field, missing.reason) == ("kind", "missing observation kind")


def test_an_unknown_type_lists_rep_observation():
    [rejection] = accept([{"type": "nope", "account_id": "a"}], source="t", now=NOW).rejected
    assert rejection.field == "type" and "rep_observation" in rejection.reason


def test_observations_go_to_their_own_topic_which_scoring_reads():
    result = accept([observation("relocation")], source="t", now=NOW)
    [record] = result.records
    assert record.topic == REP_OBSERVATIONS == INGEST_TOPICS["rep_observation"]
    assert REP_OBSERVATIONS in ALL_TOPICS
    assert REP_OBSERVATIONS in CONSUMED_BY["scoring"]
    assert orjson.loads(record.value)["source"] == "t"


def test_the_input_event_union_does_not_hold_observations():
    # Scoring decodes the observation topic with rep_observation_adapter, the others with this.
    with pytest.raises(ValidationError):
        input_event_adapter.validate_python(observation("relocation"))


def test_a_criterion_not_in_phases_yaml_is_refused():
    criteria = frozenset({"designated_vendor"})
    batch = [
        observation("phase_evidence"),
        observation("phase_evidence", criterion="golf_together"),
    ]
    result = accept(batch, source="t", now=NOW, criteria=criteria)
    assert len(result.records) == 1
    [rejection] = result.rejected
    assert (rejection.index, rejection.field) == (1, "criterion")
    assert "'golf_together' is not a criterion in phases.yaml" == rejection.reason


def test_unknown_authors_are_refused_and_the_rest_kept_in_order():
    batch = [
        observation("relocation"),
        {"type": "product_usage", "account_id": "acme", "action": "login"},
        observation("relocation", author="stranger@example.com"),
        {"type": "product_usage", "account_id": "acme", "action": 3},
        observation("phase_evidence"),
    ]
    result = accept(batch, source="t", now=NOW)
    assert result.authors_to_check() == {"rep@example.com", "stranger@example.com"}
    result.refuse_unknown_authors({"rep@example.com"})
    assert result.indexes == [0, 1, 4]
    assert result.types == ["rep_observation", "product_usage", "rep_observation"]
    assert len(result.records) == len(result.event_ids) == len(result.authors) == 3
    assert [(r.index, r.field) for r in result.rejected] == [(2, "author"), (3, "action")]
    assert result.rejected[0].reason == "'stranger@example.com' is not a known user"


def test_phase_evidence_model():
    event = ingest_event_adapter.validate_python(observation("phase_evidence"))
    assert isinstance(event, PhaseEvidence) and event.criterion == "designated_vendor"
