"""Real tracking SDKs from PyPI (Segment's analytics-python, RudderStack's Python SDK) pointed
at a running ingest: identify/group/page/track become an account with features."""

import asyncio
import uuid

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

pytestmark = pytest.mark.e2e


def _send(client, calls) -> None:
    for method, args, kwargs in calls:
        getattr(client, method)(*args, **kwargs)
    client.flush()


def _story(account: str, user: str) -> list[tuple[str, tuple, dict]]:
    return [
        ("identify", (user, {"groupId": account, "email": f"{user}@example.com"}), {}),
        (
            "group",
            (user, account, {"name": "Acme Corp", "plan": "Growth", "seats": 25, "region": "EU"}),
            {},
        ),
        *[
            ("page", (user,), {"name": "Pricing", "properties": {"url": "https://acme.io/pricing"}})
            for _ in range(3)
        ],
        ("page", (user,), {"name": "Docs", "properties": {"url": "https://acme.io/docs/api"}}),
        # No account in these calls: they resolve through the identify link above.
        ("track", (user, "Report Exported"), {"properties": {"feature": "reports"}}),
        ("track", (user, "Email Link Clicked"), {"properties": {"campaign_id": "spring"}}),
        ("track", (user, "NPS Survey Submitted"), {"properties": {"score": 9}}),
    ]


async def _account(stack, account: str, expected_events: int) -> dict:
    async def settled():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        if response.status_code != 200:
            return None
        body = response.json()
        return body if sum(body["event_counts"].values()) >= expected_events else None

    return await stack.wait_for(settled, within=60)


def _check(body: dict) -> None:
    assert body["attributes"]["name"] == "Acme Corp"
    assert body["attributes"]["plan"] == "Growth"
    assert body["attributes"]["seats"] == 25
    assert body["attributes"]["attributes"] == {"region": "EU"}
    assert body["event_counts"] == {
        "account_update": 1,
        "web_visit": 4,
        "product_usage": 1,
        "email_engagement": 1,
        "survey_response": 1,
    }
    assert body["features"]["pricing_visits_7d"] == 3
    assert body["features"]["nps"] == 9
    assert body["features"]["cross_sell_clicks_14d"] == 0  # the click had no tags


async def test_segment_python_sdk_builds_an_account(stack):
    account, user = f"seg-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    errors: list = []
    client = SegmentClient(
        write_key=stack.ingest_key,
        host=stack.urls["ingest"],
        sync_mode=True,
        gzip=True,
        on_error=lambda error, batch: errors.append(error),
    )
    await asyncio.to_thread(_send, client, _story(account, user))
    assert errors == []
    _check(await _account(stack, account, 8))


async def test_rudderstack_python_sdk_builds_an_account(stack):
    account, user = f"rud-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    errors: list = []
    client = RudderClient(
        write_key=stack.ingest_key,
        host=stack.urls["ingest"],
        sync_mode=True,
        on_error=lambda error, batch: errors.append(error),
    )
    await asyncio.to_thread(_send, client, _story(account, user))
    assert errors == []
    _check(await _account(stack, account, 8))


async def test_a_call_of_an_unknown_user_is_reported_to_the_sdk(stack):
    errors: list = []
    client = SegmentClient(
        write_key=stack.ingest_key,
        host=stack.urls["ingest"],
        sync_mode=True,
        on_error=lambda error, batch: errors.append(error),
    )
    with pytest.raises(Exception) as raised:
        await asyncio.to_thread(client.track, f"nobody-{uuid.uuid4().hex}", "Logged In")
    assert getattr(raised.value, "status", None) == 422
    assert "not linked to an account" in str(raised.value.response.text)
