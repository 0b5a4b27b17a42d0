"""Hard limits and precise errors on both ingest APIs, against a running ingest."""

import base64
import gzip
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

pytestmark = pytest.mark.e2e


def _usage(**overrides) -> dict:
    return {
        "type": "product_usage",
        "account_id": "limits-acct",
        "event_id": uuid.uuid4().hex,
        "action": "login",
        **overrides,
    }


async def _post(stack, body: bytes, headers: dict | None = None, path: str = "/v1/events"):
    async with stack.ingest() as client:
        return await client.post(
            path, content=body, headers={"Content-Type": "application/json", **(headers or {})}
        )


def _batch(n: int) -> bytes:
    return orjson.dumps({"events": [_usage() for _ in range(n)]})


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (_batch(1001), {}, 413, "at most 1000 events"),
        (
            orjson.dumps({"events": [_usage(properties={"pad": "x" * 30_000}) for _ in range(40)]}),
            {},
            413,
            "larger than 1048576",
        ),
        (gzip.compress(b"\0" * (50 * 1024 * 1024)), {"Content-Encoding": "gzip"}, 413, "larger"),
        (b"\x1f\x8b\x08\x00garbage-not-gzip", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (gzip.compress(_batch(2)) + b"junk" * 1000, {"Content-Encoding": "gzip"}, 400, "after"),
        (b'{"type": "product_usage", "action": "\xff\xfe"}', {}, 400, "UTF-8"),
        (b"<event/>", {"Content-Type": "text/xml"}, 415, "text/xml"),
        (b'{"events": [', {}, 400, "malformed JSON"),
        (b"[1, 2]", {}, 400, "event object"),
        (_batch(2), {"Content-Encoding": "br"}, 415, "encoding"),
    ],
    ids=[
        "1001-events",
        "over-1MiB",
        "gzip-bomb",
        "bad-gzip",
        "data-after-gzip",
        "not-utf8",
        "xml",
        "bad-json",
        "not-an-object",
        "brotli",
    ],
)
async def test_request_level_errors(stack, body, headers, status, says):
    response = await _post(stack, body, headers)
    assert response.status_code == status, response.text
    assert says in response.text


async def test_gzip_within_the_limit_is_accepted(stack):
    response = await _post(stack, gzip.compress(_batch(50)), {"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 50


async def test_invalid_events_are_listed_and_the_valid_ones_accepted(stack):
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    events = [
        _usage(),
        _usage(quantity="lots"),
        _usage(colour="red"),
        {**_usage(), "type": "telepathy"},
        {k: v for k, v in _usage().items() if k != "account_id"},
        _usage(occurred_at=future),
        _usage(action="nul\u0000byte"),
        _usage(properties={"blob": "x" * 33_000}),
        _usage(received_at=datetime.now(UTC).isoformat()),
        "not an object",
        _usage(),
    ]
    async with stack.ingest() as client:
        response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    found = {r["index"]: (r["field"], r["reason"]) for r in body["rejected"]}
    assert found[1][0] == "quantity" and "number" in found[1][1]
    assert found[2] == ("colour", "Extra inputs are not permitted")
    assert found[3][0] == "type" and "unknown event type" in found[3][1]
    assert found[4][0] == "account_id" and "required" in found[4][1].lower()
    assert found[5][0] == "occurred_at" and "future" in found[5][1]
    assert found[6][0] == "action" and "NUL" in found[6][1]
    assert found[7][0] == "(event)" and "larger than 32768" in found[7][1]
    assert found[8] == ("received_at", "is set by the server")
    assert found[9] == ("(event)", "must be a JSON object")
    assert sorted(found) == list(range(1, 10))


async def test_nothing_valid_is_422(stack):
    async with stack.ingest() as client:
        response = await client.post("/v1/events", json={"events": [_usage(quantity=-1)]})
    assert response.status_code == 422
    assert response.json()["accepted"] == 0
    assert response.json()["rejected"][0]["field"] == "quantity"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic d3Jvbmc6"}]
)
async def test_native_api_needs_a_valid_bearer_key(stack, headers):
    async with httpx.AsyncClient(base_url=stack.urls["ingest"]) as client:
        response = await client.post("/v1/events", json=_usage(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def _basic(key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_segment_routes_take_basic_auth_or_write_key(stack):
    account = f"seg-auth-{uuid.uuid4().hex[:6]}"
    group = {"groupId": account, "traits": {"name": "Basic Co"}}
    async with httpx.AsyncClient(base_url=stack.urls["ingest"]) as client:
        by_header = await client.post("/v1/group", json=group, headers=_basic(stack.ingest_key))
        by_body = await client.post("/v1/group", json={**group, "writeKey": stack.ingest_key})
        none = await client.post("/v1/group", json=group)
        wrong = await client.post("/v1/group", json=group, headers=_basic("nope"))
        wrong_body = await client.post("/v1/group", json={**group, "writeKey": 42})
    assert by_header.status_code == 200 and by_header.json() == {"success": True}
    assert by_body.status_code == 200 and by_body.json() == {"success": True}
    for refused in (none, wrong, wrong_body):
        assert refused.status_code == 401
        assert refused.json()["success"] is False and refused.json()["code"] == "unauthorized"


async def test_segment_batch_partial_acceptance(stack):
    account, user = f"seg-part-{uuid.uuid4().hex[:6]}", f"u-{uuid.uuid4().hex[:6]}"
    batch = [
        {"type": "identify", "userId": user, "traits": {"groupId": account}},
        {"type": "track", "userId": user, "event": "Logged In", "messageId": uuid.uuid4().hex},
        {"type": "track", "userId": "stranger", "event": "Logged In"},
        {"type": "group", "traits": {"name": "No Id"}},
        {"type": "alias", "userId": user, "previousId": "x"},
        {"type": "track", "userId": user, "event": ""},
        {"type": "page", "userId": user, "properties": {"url": ""}},
        {"type": "track", "userId": user, "event": "x", "timestamp": "yesterday"},
    ]
    async with httpx.AsyncClient(base_url=stack.urls["ingest"]) as client:
        response = await client.post(
            "/v1/batch", json={"batch": batch}, headers=_basic(stack.ingest_key)
        )
        too_many = await client.post(
            "/v1/batch",
            json={"batch": [batch[1]] * 1001},
            headers=_basic(stack.ingest_key),
        )
        nothing = await client.post(
            "/v1/batch", json={"batch": batch[2:]}, headers=_basic(stack.ingest_key)
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == "invalid_events"
    assert body["accepted"] == 2
    found = {r["index"]: (r["field"], r["reason"]) for r in body["rejected"]}
    assert found[2][0] == "userId" and "not linked" in found[2][1]
    assert found[3][0] == "groupId"
    assert found[4][0] == "type" and "alias" in found[4][1]
    assert found[5][0] == "event"
    assert found[6][0] == "properties.url"
    assert found[7][0] == "timestamp"
    assert sorted(found) == [2, 3, 4, 5, 6, 7]
    assert too_many.status_code == 413 and too_many.json()["success"] is False
    assert nothing.status_code == 422 and nothing.json()["accepted"] == 0
