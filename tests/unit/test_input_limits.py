"""The one set of event limits (kizashi.contracts.limits), as the shared decoder applies it,
and the per-account attribute cap scoring keeps (kizashi.scoring.attributes)."""

import random
from datetime import timedelta
from itertools import permutations

import orjson
import pytest
from pydantic import ValidationError

from kizashi.contracts.events import input_event_adapter
from kizashi.contracts.limits import (
    MAX_ACCOUNT_ATTRIBUTES_BYTES,
    MAX_ATTRIBUTE_KEYS,
    MAX_JSON_DEPTH,
)
from kizashi.scoring.attributes import ATTRIBUTES_DROPPED
from kizashi.scoring.features import AccountState
from tests.unit.scoring_events import NOW, event, state_of


def _nested(depth: int, leaf: object = 1) -> dict:
    value: object = leaf
    for _ in range(depth):
        value = {"x": value}
    return value  # type: ignore[return-value]


def _usage(**fields) -> dict:
    return {"type": "product_usage", "account_id": "a", "action": "login", **fields}


def _refusal(raw: dict) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        input_event_adapter.validate_python(raw)
    error = caught.value.errors()[0]
    return ".".join(str(p) for p in error["loc"][1:]), error["msg"]


def test_nesting_is_bounded_in_python_and_json_decoding_alike() -> None:
    deepest = _usage(properties=_nested(MAX_JSON_DEPTH))
    assert input_event_adapter.validate_python(deepest).properties
    # The serialised form decodes the same way (what scoring does with a record).
    input_event_adapter.validate_json(orjson.dumps(deepest))
    for depth in (MAX_JSON_DEPTH + 1, 254, 255, 1000, 5000):
        field, reason = _refusal(_usage(properties=_nested(depth)))
        assert field == "properties" and f"{MAX_JSON_DEPTH} levels" in reason
    lists = _usage(properties={"a": [[[[]]]] * 3, "b": _nested(MAX_JSON_DEPTH + 1, [1])})
    assert _refusal(lists)[0] == "properties"
    with pytest.raises(ValidationError):
        input_event_adapter.validate_json(orjson.dumps(_usage(properties=_nested(200))))


def test_nul_is_found_at_any_depth_and_in_keys() -> None:
    for properties in (
        {"a": "x\x00"},
        {"a\x00": 1},
        _nested(MAX_JSON_DEPTH - 2, ["ok", {"k\x00": 1}]),
        _nested(MAX_JSON_DEPTH - 1, "nul\x00"),
    ):
        field, reason = _refusal(_usage(properties=properties))
        assert field == "properties" and "NUL" in reason


@pytest.mark.parametrize(
    "occurred_at",
    ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00"],
)
def test_times_before_the_epoch_in_utc_are_refused(occurred_at: str) -> None:
    field, reason = _refusal(_usage(occurred_at=occurred_at))
    assert field == "occurred_at" and "1970-01-01" in reason


def test_times_at_the_bounds_convert_to_utc_and_epoch_seconds() -> None:
    for occurred_at in ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00-14:00"):
        parsed = input_event_adapter.validate_python(_usage(occurred_at=occurred_at))
        assert parsed.occurred_at.timestamp() >= 0
    assert _refusal(_usage(occurred_at="9999-12-31T23:00:00-14:00"))[0] == "occurred_at"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "survey_response", "survey_id": "s", "nps": True}, "nps"),
        ({"type": "survey_response", "survey_id": "s", "nps": "3"}, "nps"),
        ({"type": "survey_response", "survey_id": "s", "csat": 4.0}, "csat"),
        ({"type": "survey_response", "survey_id": "s", "upsell_intent": False}, "upsell_intent"),
        ({"type": "product_usage", "action": "x", "quantity": True}, "quantity"),
        ({"type": "product_usage", "action": "x", "quantity": "2"}, "quantity"),
        ({"type": "account_update", "arr": "1000"}, "arr"),
        ({"type": "account_update", "seats": True}, "seats"),
        ({"type": "web_visit", "url": "https://x.io", "duration_s": "5"}, "duration_s"),
    ],
)
def test_a_boolean_or_a_string_is_not_a_number(raw: dict, field: str) -> None:
    assert _refusal({"account_id": "a", **raw})[0] == field


def test_numbers_stay_numbers() -> None:
    update = input_event_adapter.validate_python(
        {"type": "account_update", "account_id": "a", "arr": 1000, "seats": 40}
    )
    assert update.arr == 1000.0 and update.seats == 40
    survey = input_event_adapter.validate_json(
        b'{"type": "survey_response", "account_id": "a", "survey_id": "s", "nps": 3}'
    )
    assert survey.nps == 3


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({f"k{i}": i for i in range(MAX_ATTRIBUTE_KEYS + 1)}, "201 keys"),
        ({"k" * 129: 1}, "1 to 128 characters"),
        ({"": 1}, "1 to 128 characters"),
        ({"notes": "x" * 400}, "'notes' is 409 bytes"),
        ({"deep": _nested(MAX_JSON_DEPTH)}, "levels"),
    ],
)
def test_attributes_are_bounded_per_update(attributes: dict, says: str) -> None:
    field, reason = _refusal(
        {"type": "account_update", "account_id": "a", "attributes": attributes}
    )
    assert field == "attributes" and says in reason


def _attribute_updates(rnd: random.Random, updates: int, keys_each: int) -> list:
    start = NOW - timedelta(days=3)
    return [
        event(
            "account_update",
            start + timedelta(minutes=rnd.randrange(60)),
            event_id=f"u{n:03d}",
            attributes={f"k{rnd.randrange(3 * keys_each)}": "v" * 300 for _ in range(keys_each)},
        )
        for n in range(updates)
    ]


def test_an_account_keeps_its_most_recent_attributes_in_any_order() -> None:
    rnd = random.Random(16)
    updates = _attribute_updates(rnd, 5, 150)
    results = set()
    dropped_before = ATTRIBUTES_DROPPED._value.get()
    for order in list(permutations(updates))[:40]:
        attributes = state_of(*order).facts("acme").attributes
        assert len(attributes) == MAX_ATTRIBUTE_KEYS
        assert len(orjson.dumps(attributes)) <= MAX_ACCOUNT_ATTRIBUTES_BYTES
        results.add(orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS))
    assert len(results) == 1
    assert ATTRIBUTES_DROPPED._value.get() > dropped_before
    # The kept ones are the newest writes: each kept key was written no earlier than any
    # dropped key's newest write.
    state = state_of(*updates)
    newest = {}
    for update in updates:
        for key in update.attributes:
            newest[key] = max(
                newest.get(key, (0.0, "")), (update.occurred_at.timestamp(), update.event_id)
            )
    kept = set(state.facts("acme").attributes)
    dropped = set(newest) - kept
    assert dropped and min(newest[k] for k in kept) >= max(newest[k] for k in dropped)


def test_a_state_stored_before_the_cap_is_capped_when_read() -> None:
    crm = {f"attributes.k{i}": [float(i), f"e{i}", i] for i in range(5000)}
    crm["plan"] = [1.0, "p", "pro"]
    state = AccountState.from_json({"crm": crm})
    attributes = state.facts("acme").attributes
    assert len(attributes) == MAX_ATTRIBUTE_KEYS
    assert set(attributes) == {f"k{i}" for i in range(5000 - MAX_ATTRIBUTE_KEYS, 5000)}
    assert state.facts("acme").plan == "pro"
