"""What triggers reads of a `scores.changed` (kizashi.triggers.change.RuleInput): the contract's
own fields and types, a schema violation still refused (and so dead-lettered), and decisions
on it the same as on the whole contract model."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import orjson
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.topics import SCORES_CHANGED
from kizashi.triggers.change import RuleInput
from kizashi.triggers.consumer import decode
from kizashi.triggers.decide import AccountMemory, decide
from kizashi.triggers.rules import load_rules_config

NOW = datetime(2026, 6, 12, 9, 30, tzinfo=UTC)


def change(**overrides) -> dict:
    data = {
        "account_id": "acme",
        "computed_at": NOW.isoformat(),
        "config_version": "2026.2",
        "before": {"cs": 70.0, "op": 40.0, "segment": "nurture", "priority": "medium"},
        "after": {"cs": 60.0, "op": 40.0, "segment": "nurture", "priority": "high"},
        "breakdown": [
            {
                "index": "cs",
                "component": "nps",
                "raw": 2.0,
                "weight": 12.0,
                "points": 0.0,
                "explanation": "NPS 2",
            }
        ],
        "account": {"account_id": "acme", "name": "Acme", "owner_email": "a@example.com"},
        "features": {"nps": 2.0, "nps_at": NOW.timestamp() - 60, "usage_7d": None},
        "events": [
            {
                "event_id": "e1",
                "type": "survey_response",
                "occurred_at": NOW.isoformat(),
                "received_at": NOW.isoformat(),
            }
        ],
        "event_count": 1,
        "cause": "events",
    }
    data.update(overrides)
    return data


def record(value: dict | bytes) -> ConsumerRecord:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return ConsumerRecord(SCORES_CHANGED, 0, 0, 0, 0, b"acme", raw, None, 0, len(raw), ())


def test_its_fields_are_the_contracts_with_the_same_types() -> None:
    ours = typing.get_type_hints(RuleInput)
    theirs = typing.get_type_hints(ScoresChanged)
    assert ours.keys() <= theirs.keys()
    for name, annotation in ours.items():
        assert annotation == theirs[name], name
        assert RuleInput.model_fields[name].is_required() == (
            ScoresChanged.model_fields[name].is_required()
        ), name


def test_a_valid_change_is_decoded_with_its_text_kept_whole() -> None:
    value = orjson.dumps(change())
    changes, rejected = decode([record(value)])
    assert rejected == []
    ((decoded, text, _),) = changes
    assert text == value
    assert decoded.after.cs == 60.0 and decoded.account.name == "Acme"
    assert decoded.events[0].received_at == NOW


def test_schema_violations_in_what_the_rules_read_are_refused() -> None:
    bad = [
        b"not json",
        orjson.dumps({"type": "survey_response", "account_id": "", "nps": 99}),
        orjson.dumps(
            change(after={"cs": 160.0, "op": 40.0, "segment": "nurture", "priority": "high"})
        ),
        orjson.dumps(change(features={"nps": "two"})),
        orjson.dumps(change(account={"account_id": "acme", "seats": "many"})),
        orjson.dumps(change(computed_at="yesterday")),
        orjson.dumps({k: v for k, v in change().items() if k != "account"}),
    ]
    changes, rejected = decode([record(value) for value in bad])
    assert changes == []
    assert len(rejected) == len(bad)
    assert all("schema violation" in str(error) for _, error in rejected)


def test_decisions_on_it_are_those_on_the_whole_contract_model() -> None:
    rules = load_rules_config(None)
    value = orjson.dumps(change())
    lean, whole = RuleInput.model_validate_json(value), ScoresChanged.model_validate_json(value)
    ours = decide(lean, AccountMemory(), rules, now=NOW, message=value)
    theirs = decide(whole, AccountMemory(), rules, now=NOW, message=value)
    assert [s.model_dump() for s in ours.signals] == [s.model_dump() for s in theirs.signals]
    assert [s.rule for s in ours.signals] == ["detractor"]
    assert ours.evaluation == theirs.evaluation
