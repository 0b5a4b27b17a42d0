"""Issue #16 on a running stack: every input the issue found is either refused with a 4xx
that names the call or event, the field and the reason, or accepted and then applied by
scoring (visible in its API, nothing dead-lettered). Never a 500, and never "2xx, then
dropped"."""

import base64
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from kizashi.contracts.limits import MAX_ATTRIBUTE_KEYS, MAX_JSON_DEPTH
from tests.support.deadletters import dead_letters_for

pytestmark = pytest.mark.e2e


def _nested(depth: int) -> str:
    """A placeholder for `depth` nested objects, written into the body as raw JSON (no JSON
    encoder in Python goes 1,000 levels deep)."""
    return f"@deep:{depth}"


def _body(payload: dict) -> bytes:
    body = orjson.dumps(payload)
    for depth in (MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 201, 254, 255, 1000):
        nested = b'{"x":' * depth + b'"leaf"' + b"}" * depth
        body = body.replace(b'"@deep:%d"' % depth, nested)
    return body


class Case:
    """Sends one request per case, remembers what was accepted for which account."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.run = uuid.uuid4().hex[:8]
        self.accepted: dict[str, int] = {}
        self.accounts: set[str] = set()
        self.basic = {
            "Authorization": "Basic " + base64.b64encode(f"{stack.ingest_key}:".encode()).decode()
        }

    def account(self, name: str) -> str:
        account = f"i16-{self.run}-{name}"
        self.accounts.add(account)
        return account

    def event(self, account: str, kind: str = "product_usage", **fields) -> dict:
        base = {"product_usage": {"action": "login"}, "survey_response": {"survey_id": "q"}}
        return {"type": kind, "account_id": account, **base.get(kind, {}), **fields}

    async def native(self, events: list[dict]):
        async with self.stack.ingest() as client:
            response = await client.post(
                "/v1/events",
                content=_body({"events": events}),
                headers={"Content-Type": "application/json"},
            )
        assert response.status_code in (202, 422), response.text
        for event in events:
            self.accepted.setdefault(event["account_id"], 0)
        for index, event in enumerate(events):
            if index not in {r["index"] for r in response.json()["rejected"]}:
                self.accepted[event["account_id"]] += 1
        return response

    async def refused(self, event: dict, field: str, says: str) -> None:
        response = await self.native([event])
        assert response.status_code == 422, response.text
        [rejection] = response.json()["rejected"]
        assert rejection["index"] == 0 and rejection["field"] == field, rejection
        assert says in rejection["reason"], rejection

    async def segment(self, path: str, body: dict):
        async with self.stack.ingest() as client:
            response = await client.post(path, json=body, headers=self.basic)
        assert response.status_code < 500, response.text
        return response


async def _applied(stack, account: str) -> dict | None:
    response = await stack.get("scoring", f"/v1/accounts/{account}")
    return response.json() if response.status_code == 200 else None


async def test_each_input_of_the_issue_is_refused_with_a_reason_or_applied(
    stack, bootstrap_servers
):
    case = Case(stack)
    refused = case.account("refused")

    # Nesting: past the shared depth limit, refused by the one decoder, at every depth that
    # used to pass ingest and fail scoring (201–254) or 500 (255–1,024).
    for depth in (MAX_JSON_DEPTH + 1, 201, 254, 255, 1000):
        await case.refused(
            case.event(refused, properties=_nested(depth)), "properties", "32 levels"
        )
        await case.refused(
            case.event(refused, "account_update", attributes=_nested(depth)),
            "attributes",
            "32 levels",
        )
    await case.refused(
        case.event(refused, occurred_at="0001-01-01T00:00:00+14:00"), "occurred_at", "1970"
    )
    await case.refused(case.event(refused, "survey_response", nps=True), "nps", "integer")
    await case.refused(case.event(refused, "survey_response", nps="3"), "nps", "integer")
    await case.refused(case.event(refused, quantity="2"), "quantity", "number")
    await case.refused(
        case.event(refused, "account_update", attributes={f"k{i}": i for i in range(2400)}),
        "attributes",
        "2400 keys",
    )

    # The deepest and earliest accepted inputs are applied.
    edge = case.account("edge")
    accepted = await case.native(
        [
            case.event(edge, properties=_nested(MAX_JSON_DEPTH)),
            case.event(edge, occurred_at="1970-01-01T00:00:00-14:00"),
            case.event(edge, "survey_response", nps=9, csat=5),
        ]
    )
    assert accepted.status_code == 202 and accepted.json()["rejected"] == []

    # Attributes: 12 updates of 200 new keys each; the account keeps the newest 200 and its
    # rules still run (a detractor answer alerts).
    grown = case.account("grown")
    start = datetime.now(UTC) - timedelta(hours=2)
    for update in range(12):
        attributes = {f"u{update:02d}-k{key:03d}": "v" * 80 for key in range(MAX_ATTRIBUTE_KEYS)}
        response = await case.native(
            [
                case.event(
                    grown,
                    "account_update",
                    event_id=f"{case.run}-grown-{update}",
                    occurred_at=(start + timedelta(minutes=update)).isoformat(),
                    attributes=attributes,
                    # Someone to tell, so that the alert's delivery is no dead letter either.
                    owner_email="cs@reps.example",
                )
            ]
        )
        assert response.status_code == 202, response.text
    await case.native([case.event(grown, "survey_response", nps=2)])

    # Segment: the same id rule for every call; a bad call in a batch is refused alone.
    users = case.account("segment")
    for path, call in (
        ("/v1/identify", {"userId": "nul\x00user", "traits": {"groupId": users}}),
        ("/v1/track", {"userId": "nul\x00user", "event": "Login", "context": {"groupId": users}}),
        ("/v1/page", {"userId": "nul\x00user", "properties": {"url": "https://x.io"}}),
        ("/v1/identify", {"userId": "u" * 10_000, "traits": {"groupId": users}}),
        ("/v1/identify", {"userId": "u" * 300, "traits": {"groupId": users}}),
        ("/v1/track", {"userId": "u" * 300, "event": "Login", "context": {"groupId": users}}),
        ("/v1/group", {"groupId": users, "traits": {"nps_like": "x", "seats": True}}),
    ):
        response = await case.segment(path, call)
        assert response.status_code == 422, (path, response.text)
        [rejection] = response.json()["rejected"]
        assert rejection["field"] in ("userId", "traits.seats"), rejection
    longest = "u" * 128
    assert (
        await case.segment("/v1/identify", {"userId": longest, "traits": {"groupId": users}})
    ).status_code == 200
    batch = await case.segment(
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": longest, "event": "Login"},
                {"type": "track", "userId": "bad\x00", "event": "Login"},
                {"type": "track", "userId": longest, "event": "Report Exported"},
            ]
        },
    )
    assert batch.status_code == 400 and batch.json()["accepted"] == 2, batch.text
    assert [(r["index"], r["field"]) for r in batch.json()["rejected"]] == [(1, "userId")]
    case.accepted[users] = 2

    # Everything accepted is applied: counted by scoring, nothing dead-lettered.
    wanted = {account: n for account, n in case.accepted.items() if n}
    assert wanted == {edge: 3, grown: 13, users: 2}

    async def all_applied():
        for account, count in wanted.items():
            view = await _applied(stack, account)
            if view is None or sum(view["event_counts"].values()) != count:
                return False
        return True

    await stack.wait_for(all_applied, within=60)
    assert await _applied(stack, refused) is None
    view = await _applied(stack, grown)
    attributes = view["attributes"]["attributes"]
    assert len(attributes) == MAX_ATTRIBUTE_KEYS
    assert set(attributes) == {f"u11-k{key:03d}" for key in range(MAX_ATTRIBUTE_KEYS)}

    async def detractor_alert():
        response = await stack.get("triggers", "/v1/signals", account_id=grown)
        return [s for s in response.json() if s["rule"] == "detractor"]

    [signal] = await stack.wait_for(detractor_alert, within=60)
    letters = await dead_letters_for(bootstrap_servers, case.accounts)
    assert letters == [], [(x["service"], x["reason"]) for x in letters]

    # Snooze: `until` bounded like `hours`, and never a 500.
    now = datetime.now(UTC)
    async with stack.api() as client:
        url = f"{stack.urls['triggers']}/v1/signals/{signal['signal_id']}/snooze"
        for until, says in (
            ("9999-12-31T23:00:00-14:00", "out of range"),
            ("9999-12-31T23:00:00+00:00", "at most 90 days"),
            ((now + timedelta(days=91)).isoformat(), "at most 90 days"),
        ):
            response = await client.post(url, json={"until": until})
            assert response.status_code == 422 and says in response.text, response.text
        snoozed = await client.post(url, json={"until": (now + timedelta(days=2)).isoformat()})
    assert snoozed.status_code == 200, snoozed.text
