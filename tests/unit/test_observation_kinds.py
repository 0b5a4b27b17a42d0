"""Configurable observation kinds (issue #18): observations.yaml (the packaged file, an
operator's file laid over it, each broken file naming the key), and what ingest's `accept`
does with a switched-off kind and with a custom kind's fields."""

from datetime import UTC, datetime

import orjson
import pytest

from kizashi.contracts.observations import OBSERVATION_KINDS, CustomObservation
from kizashi.ingest.accept import accept
from kizashi.runtime.observation_kinds import (
    OBSERVATIONS_FILE,
    ObservationConfigError,
    load_observation_config,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SITE_VISIT = """
kinds:
  relocation: {enabled: false}
  outcome_realised: {label: Result, hint: "Did it work?"}
  site_visit:
    label: Site visit
    hint: You walked their site.
    fields:
      visited_on: {type: date, required: true, label: Visited on}
      machines_seen: {type: number}
      state: {type: choice, choices: [new, worn, failing], required: true}
      summary: {type: text, max_length: 20}
      escorted: {type: boolean}
"""


@pytest.fixture
def kinds(tmp_path):
    (tmp_path / "observations.yaml").write_text(SITE_VISIT)
    return load_observation_config(tmp_path)


def test_the_packaged_file_enables_the_nine_built_in_kinds_with_labels_and_hints():
    config = load_observation_config(None)
    assert config.enabled == OBSERVATION_KINDS
    for kind in OBSERVATION_KINDS:
        assert config.spec(kind).label and config.spec(kind).hint, kind


def test_an_operators_file_is_laid_over_the_packaged_one(kinds):
    assert "relocation" not in kinds.enabled
    assert kinds.enabled[-1] == "site_visit"
    assert (kinds.label("outcome_realised"), kinds.spec("outcome_realised").hint) == (
        "Result",
        "Did it work?",
    )
    # What the operator's file does not name keeps the packaged label.
    assert kinds.label("renewal_timing") == "Renewal timing"
    fields = kinds.spec("site_visit").fields
    assert list(fields) == ["visited_on", "machines_seen", "state", "summary", "escorted"]
    assert fields["summary"].longest == 20


def test_the_deployed_file_is_the_packaged_one():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert (root / "deploy/config/observations.yaml").read_text() == (
        OBSERVATIONS_FILE.default_path().read_text()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kinds: {relocation: {enabled: nope}}", "kinds.relocation.enabled: must be true or false"),
        ("kinds: {relocation: {colour: red}}", "kinds.relocation.colour: unknown key"),
        (
            "kinds: {site_visit: {label: Visit}}",
            "kinds: 'site_visit' is not a built-in kind (renewal_timing, ",
        ),
        (
            "kinds: {relocation: {fields: {}}}",
            "kinds: 'relocation' is a built-in kind: its fields are the contract's",
        ),
        (
            "kinds: {s: {fields: {a: {type: colour}}}}",
            "kinds.s.fields.a.type: must be one of 'text', 'number', 'boolean', 'date' or "
            "'choice', got 'colour'",
        ),
        ("kinds: {s: {fields: {a: {type: choice}}}}", "kinds.s.fields.a: a choice field needs"),
        (
            "kinds: {s: {fields: {a: {type: number, max_length: 3}}}}",
            "kinds.s.fields.a: max_length is for text fields only",
        ),
        (
            "kinds: {s: {fields: {a: {type: text, choices: [x]}}}}",
            "kinds.s.fields.a: choices are for choice fields only",
        ),
        ("kinds: {s: {fields: {a: {type: text, max_length: 0}}}}", "max_length: must be ≥ 1"),
        ("kinds: {s: {fields: {a: {type: text, required: 'yes'}}}}", "required: must be true"),
        ("kinds: {Site-Visit: {fields: {}}}", "kinds.Site-Visit: a name is lower-case letters"),
        ("kinds: {s: {fields: {A b: {type: text}}}}", "kinds.s.fields.A b: a name is lower-case"),
        ("kinds: {s: {fields: {}}}\nkinds: {}", "duplicate key 'kinds'"),
        (
            "kinds: {s: {fields: {note: {type: text}, csrf: {type: text}}}}",
            "kinds.s.fields: csrf, note: a name the observation itself uses",
        ),
        ("- kinds", "must be a mapping at the top level"),
        ("colours: {}", "colours: unknown key"),
    ],
)
def test_a_broken_observations_yaml_names_the_file_and_key(text, message):
    with pytest.raises(ObservationConfigError) as raised:
        OBSERVATIONS_FILE.parse(text)
    assert str(raised.value).startswith("observations.yaml: ")
    assert message in str(raised.value)


def test_an_operators_broken_file_is_named_by_its_path(tmp_path):
    (tmp_path / "observations.yaml").write_text("kinds: {relocation: {enabled: 2}}\n")
    with pytest.raises(ObservationConfigError, match=str(tmp_path / "observations.yaml")):
        load_observation_config(tmp_path)


def _observation(kind: str, **body) -> dict:
    return {
        "type": "rep_observation",
        "account_id": "acme",
        "author": "rep@example.com",
        "kind": kind,
        **body,
    }


def test_a_custom_kind_is_accepted_with_its_fields_as_given(kinds):
    fields = {"visited_on": "2026-05-30", "state": "worn", "machines_seen": 3, "escorted": False}
    result = accept([_observation("site_visit", fields=fields)], source="t", now=NOW, kinds=kinds)
    assert result.rejected == []
    [record] = result.records
    assert orjson.loads(record.value)["fields"] == fields
    assert orjson.loads(record.value)["kind"] == "site_visit"


def test_a_switched_off_or_unknown_kind_is_refused_naming_the_configured_kinds(kinds):
    off = _observation("relocation", moving_on="2026-09-01")
    unknown = _observation("gossip", fields={})
    result = accept([off, unknown], source="t", now=NOW, kinds=kinds)
    assert result.records == []
    first, second = result.rejected
    assert first.field == second.field == "kind"
    assert first.reason.startswith(
        "unknown observation kind: 'relocation' is switched off in observations.yaml; "
        "expected one of renewal_timing, key_person_change, policy_change,"
    )
    assert first.reason.endswith("phase_evidence, site_visit")
    assert second.reason.startswith("unknown observation kind: 'gossip' is not configured;")
    # Without an operator's file there are no custom kinds at all.
    [plain] = accept([unknown], source="t", now=NOW).rejected
    assert "'gossip' is not configured" in plain.reason and "site_visit" not in plain.reason


GOOD = {"visited_on": "2026-05-30", "state": "new"}


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({**GOOD, "colour": "red"}, "fields.colour", "unknown field of 'site_visit'; its fields:"),
        ({"state": "new"}, "fields.visited_on", "required field is missing"),
        ({**GOOD, "visited_on": "last week"}, "fields.visited_on", "must be a date like"),
        ({**GOOD, "visited_on": 20260530}, "fields.visited_on", "must be text, got 20260530"),
        ({**GOOD, "state": "broken"}, "fields.state", "must be one of new, worn, failing"),
        ({**GOOD, "machines_seen": "3"}, "fields.machines_seen", "must be a number, got '3'"),
        ({**GOOD, "machines_seen": True}, "fields.machines_seen", "must be a number, got True"),
        ({**GOOD, "escorted": "yes"}, "fields.escorted", "must be true or false, got 'yes'"),
        ({**GOOD, "summary": "x" * 21}, "fields.summary", "must be at most 20 characters, got 21"),
        ({**GOOD, "summary": [1]}, "fields.summary", "must be text, a number or true/false"),
        ({**GOOD, "summary": "a\x00b"}, "fields.summary", "NUL"),
    ],
)
def test_a_bad_custom_field_is_named(kinds, fields, field, reason):
    raw = _observation("site_visit", fields=fields)
    [rejection] = accept([raw], source="t", now=NOW, kinds=kinds).rejected
    assert rejection.field == field
    assert reason in rejection.reason


def test_a_custom_kind_may_not_carry_a_built_in_kinds_fields(kinds):
    raw = _observation("site_visit", fields=GOOD, due_date="2027-01-01")
    [rejection] = accept([raw], source="t", now=NOW, kinds=kinds).rejected
    assert rejection.field == "due_date"


def test_custom_observations_round_trip_through_the_contract():
    event = CustomObservation.model_validate(
        {**_observation("site_visit", fields=GOOD), "received_at": NOW, "source": "t"}
    )
    assert event.fields == GOOD


def test_scoring_stores_a_custom_kinds_fields_and_keeps_nothing_of_it_in_the_state():
    from kizashi.scoring.observations import fold_observation, structured_fields

    event = CustomObservation.model_validate(
        {**_observation("site_visit", fields=GOOD), "received_at": NOW, "source": "t"}
    )
    assert structured_fields(event) == GOOD  # the `observations` row's `fields`
    obs: dict = {}
    evidence: dict = {}
    fold_observation(obs, evidence, event, NOW.timestamp())
    assert obs == {} and evidence == {}


def test_the_schema_lets_a_built_in_kind_match_only_its_own_model():
    import json

    from kizashi.contracts.schemas import render_schemas

    schema = json.loads(render_schemas()["rep_observation.schema.json"])
    kind = schema["$defs"]["CustomObservation"]["properties"]["kind"]
    assert sorted(kind["not"]["enum"]) == sorted(OBSERVATION_KINDS)
    assert {"$ref": "#/$defs/CustomObservation"} in schema["oneOf"]
