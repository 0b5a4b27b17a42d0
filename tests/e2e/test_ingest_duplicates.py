"""The same event id sent again (in another request, or twice in one batch, or as a Segment
messageId) is counted once, end to end."""

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.e2e


def _usage(account: str, event_id: str) -> dict:
    return {"type": "product_usage", "account_id": account, "event_id": event_id, "action": "login"}


async def test_a_repeated_event_id_counts_once(stack):
    account = f"dup-{uuid.uuid4().hex[:8]}"
    first, second, message_id = (uuid.uuid4().hex for _ in range(3))
    await stack.post_events([_usage(account, first)])
    # Again in a new request, and twice inside one batch.
    await stack.post_events([_usage(account, first), _usage(account, second)])
    await stack.post_events([_usage(account, second), _usage(account, second)])
    segment_call = {
        "userId": "dup-user",
        "event": "Logged In",
        "messageId": message_id,
        "context": {"groupId": account},
        "writeKey": stack.ingest_key,
    }
    async with stack.ingest() as client:
        for _ in range(2):
            response = await client.post("/v1/track", json=segment_call)
            assert response.status_code == 200, response.text
    # Same account and topic, so one partition: once the last event counts, all before it did.
    sentinel = uuid.uuid4().hex
    await stack.post_events([_usage(account, sentinel)])

    async def counted():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        if response.status_code != 200:
            return None
        counts = response.json()["event_counts"]
        return counts if counts.get("product_usage", 0) >= 4 else None

    counts = await stack.wait_for(counted, within=60)
    assert counts == {"product_usage": 4}  # first, second, the Segment call, the sentinel
    await asyncio.sleep(1)  # anything counted twice would have shown up by now
    again = await stack.get("scoring", f"/v1/accounts/{account}")
    assert again.json()["event_counts"] == {"product_usage": 4}


async def test_two_accounts_that_use_the_same_event_id_are_both_counted(stack):
    """Ids like `evt-1` per account are common: dedup is per (ingest key, account), so the
    second account's event is applied, and only a real repeat counts once."""
    first, second = (f"evt-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await stack.post_events([_usage(first, "evt-1"), _usage(second, "evt-1")])
    await stack.post_events(
        [_usage(second, "evt-1"), _usage(second, "evt-2")]
    )  # a retry, a new one

    async def counted(account: str, expected: int):
        async def probe():
            response = await stack.get("scoring", f"/v1/accounts/{account}")
            if response.status_code != 200:
                return None
            counts = response.json()["event_counts"]
            return counts if counts.get("product_usage", 0) >= expected else None

        return await stack.wait_for(probe, within=60)

    assert await counted(first, 1) == {"product_usage": 1}
    assert await counted(second, 2) == {"product_usage": 2}
    await asyncio.sleep(1)  # anything counted twice would have shown up by now
    again = await stack.get("scoring", f"/v1/accounts/{second}")
    assert again.json()["event_counts"] == {"product_usage": 2}
