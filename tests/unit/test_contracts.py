"""The message contracts: field names and rules of architecture §3.2, and schemas that cannot
drift."""

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from kizashi.contracts import (
    AccountUpdate,
    EmailEngagement,
    ProductUsage,
    SurveyResponse,
    WebVisit,
    input_event_adapter,
    signal_adapter,
)
from kizashi.contracts.schemas import SCHEMA_DIR, render_schemas
from kizashi.contracts.text import NUL_MESSAGE, error_reason
from kizashi.contracts.topics import ALL_TOPICS, EVENT_TOPICS, SCORES_CHANGED, SIGNAL_TOPICS


def test_exported_json_schemas_match_the_models():
    rendered = render_schemas()
    on_disk = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(rendered), "run `kizashi schemas --write`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} drifted from the models: `kizashi schemas --write`"


def test_topic_names_are_defined_once_and_follow_the_design():
    assert EVENT_TOPICS["survey_response"] == "kizashi.events.survey_response"
    assert SCORES_CHANGED == "kizashi.scores.changed"
    assert SIGNAL_TOPICS == {
        "opportunity": "kizashi.signals.opportunity",
        "churn_risk": "kizashi.signals.churn_risk",
    }
    assert len(ALL_TOPICS) == len(set(ALL_TOPICS)) == 12


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        ({"type": "product_usage", "account_id": "a", "action": "login"}, ProductUsage),
        (
            {
                "type": "email_engagement",
                "account_id": "a",
                "action": "click",
                "campaign_id": "c",
                "tags": ["cross_sell"],
            },
            EmailEngagement,
        ),
        ({"type": "web_visit", "account_id": "a", "url": "https://x.example/pricing"}, WebVisit),
        (
            {"type": "survey_response", "account_id": "a", "survey_id": "s", "nps": 7},
            SurveyResponse,
        ),
        ({"type": "account_update", "account_id": "a", "seats": 5}, AccountUpdate),
    ],
)
def test_each_input_type_parses_into_its_model(raw, model):
    event = input_event_adapter.validate_python(raw)
    assert type(event) is model
    assert len(event.event_id) == 32  # generated when absent
    assert event.quantity == 1.0 if model is ProductUsage else True


def test_page_category_is_derived_from_the_url_when_absent():
    visit = input_event_adapter.validate_python(
        {"type": "web_visit", "account_id": "a", "url": "https://x.example/docs/start"}
    )
    assert visit.page_category == "docs"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "nope", "account_id": "a"}, "type"),
        ({"type": "product_usage", "action": "login"}, "account_id"),
        ({"type": "product_usage", "account_id": "", "action": "login"}, "account_id"),
        ({"type": "product_usage", "account_id": "a" * 129, "action": "login"}, "account_id"),
        ({"type": "product_usage", "account_id": "a", "action": "x", "quantity": -1}, "quantity"),
        ({"type": "product_usage", "account_id": "a", "action": "x", "colour": "red"}, "colour"),
        ({"type": "product_usage", "account_id": "a\x00", "action": "x"}, "account_id"),
        (
            {
                "type": "product_usage",
                "account_id": "a",
                "action": "x",
                "occurred_at": "2026-01-01T10:00:00",
            },
            "occurred_at",
        ),
        ({"type": "survey_response", "account_id": "a", "survey_id": "s", "nps": 11}, "nps"),
        ({"type": "survey_response", "account_id": "a", "survey_id": "s", "csat": 0}, "csat"),
        ({"type": "survey_response", "account_id": "a", "survey_id": "s"}, ""),
        ({"type": "account_update", "account_id": "a"}, ""),
        ({"type": "account_update", "account_id": "a", "owner_email": "nobody"}, "owner_email"),
        (
            {"type": "email_engagement", "account_id": "a", "action": "read", "campaign_id": "c"},
            "action",
        ),
    ],
)
def test_invalid_events_are_refused_naming_the_field(raw, field):
    with pytest.raises(ValidationError) as error:
        input_event_adapter.validate_python(raw)
    errors = error.value.errors()
    if field == "type":
        assert errors[0]["type"] == "union_tag_invalid"
        return
    locations = [".".join(map(str, e["loc"])) for e in errors]
    assert any(field in loc for loc in locations), locations


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"properties": {"k": ["fine", "bad\x00"]}}, "properties"),
        ({"properties": {"a": {"b\x00": 1}}}, "properties"),
        ({"user_id": "u\x00"}, "user_id"),
        ({"feature": "f\x00"}, "feature"),
    ],
)
def test_nul_characters_are_refused_anywhere_naming_the_place(extra, where):
    raw = {"type": "product_usage", "account_id": "a", "action": "x", **extra}
    # From Python (ingest) and from JSON text (what consumers decode): the same error.
    for validate, value in (
        (input_event_adapter.validate_python, raw),
        (input_event_adapter.validate_json, orjson.dumps(raw)),
    ):
        with pytest.raises(ValidationError) as error:
            validate(value)
        (item,) = error.value.errors()
        assert ".".join(map(str, item["loc"][1:])) == where
        assert error_reason(item) == NUL_MESSAGE


def test_properties_keep_every_kind_of_json_value():
    properties = {"s": "x", "i": 3, "f": 2.5, "b": True, "n": None, "l": [1, "a"], "o": {"k": []}}
    raw = {"type": "product_usage", "account_id": "a", "action": "x", "properties": properties}
    event = input_event_adapter.validate_json(orjson.dumps(raw))
    assert event.properties == properties
    assert [type(v) for v in event.properties.values()] == [
        str,
        int,
        float,
        bool,
        type(None),
        list,
        dict,
    ]


def test_account_update_facts_hold_only_what_it_sets():
    update = input_event_adapter.validate_python(
        {"type": "account_update", "account_id": "a", "name": "Acme", "renewal_date": "2027-01-31"}
    )
    assert update.facts() == {"name": "Acme", "renewal_date": "2027-01-31"}


def test_signals_round_trip_by_kind():
    raw = {
        "kind": "churn_risk",
        "signal_id": "s1",
        "rule": "detractor",
        "account_id": "a",
        "priority": "high",
        "episode": "detractor:1",
        "fired_at": datetime(2026, 11, 1, tzinfo=UTC).isoformat(),
        "reasons": ["NPS 2"],
        "suggested_play": "Call them.",
        "account": {"account_id": "a", "name": "Acme"},
        "scores": {"cs": 20, "op": 10, "segment": "at_risk", "priority": "high"},
    }
    signal = signal_adapter.validate_python(raw)
    assert signal.kind == "churn_risk" and signal.account.display_name == "Acme"
    assert signal_adapter.validate_json(signal.model_dump_json()) == signal
