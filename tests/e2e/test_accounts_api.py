"""The accounts API of a running stack: one account with its breakdown and features, the
keyset-paginated list, segment counts for a chart, and precise 4xx answers."""

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from kizashi.scoring.features import FEATURE_NAMES

pytestmark = pytest.mark.e2e

BREAKDOWN_KEYS = {"index", "component", "raw", "weight", "points", "explanation"}


def _events(account: str, now: datetime, profile: int) -> list[dict]:
    """Accounts with different amounts of usage and interest, so their scores differ."""
    events: list[dict] = [
        {
            "type": "account_update",
            "account_id": account,
            "name": f"Company {profile}",
            "plan": "team",
            "arr": 20_000 + profile * 30_000,
            "seats": 10,
        }
    ]
    events += [
        {
            "type": "product_usage",
            "account_id": account,
            "user_id": f"u{i % (profile + 1)}",
            "action": "feature_used",
            "feature": f"f{i % 4}",
            "occurred_at": (now - timedelta(days=i % 9, hours=1)).isoformat(),
        }
        for i in range(profile * 6)
    ]
    events += [
        {
            "type": "web_visit",
            "account_id": account,
            "url": "https://example.com/pricing",
            "occurred_at": (now - timedelta(hours=2 + i)).isoformat(),
        }
        for i in range(profile % 4)
    ]
    if profile % 2:
        events.append(
            {
                "type": "survey_response",
                "account_id": account,
                "survey_id": "q",
                "nps": profile,
                "upsell_intent": 10 - profile,
            }
        )
    return events


@pytest.fixture(scope="module")
async def accounts(stack) -> dict[str, list[dict]]:
    prefix = f"api-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    sent = {f"{prefix}-{p}": _events(f"{prefix}-{p}", now, p) for p in range(7)}
    for events in sent.values():
        await stack.post_events(events)

    async def all_scored():
        for account, events in sent.items():
            response = await stack.get("scoring", f"/v1/accounts/{account}")
            if response.status_code != 200:
                return False
            counts = response.json()["event_counts"]
            if sum(counts.values()) != len(events):
                return False
        return True

    await stack.wait_for(all_scored, within=60)
    return sent


async def test_one_account_with_breakdown_features_and_event_counts(stack, accounts) -> None:
    account, events = next(iter(accounts.items()))
    response = await stack.get("scoring", f"/v1/accounts/{account}")
    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == account and body["attributes"]["name"] == "Company 0"
    assert 0 <= body["cs"] <= 100 and 0 <= body["op"] <= 100
    assert body["segment"] in {"expand", "recover", "nurture", "at_risk", "insufficient_data"}
    assert 0 <= body["confidence"] <= 1
    assert (body["segment"] == "insufficient_data") == (body["confidence"] < 0.5)
    confidence = {
        line["index"]: line for line in body["breakdown"] if line["component"] == ("confidence")
    }
    assert min(confidence["cs"]["raw"], confidence["op"]["raw"]) == body["confidence"]
    assert body["priority"] in {"high", "medium", "low"}
    assert body["config_version"] == "2026.4"
    assert set(body["features"]) == set(FEATURE_NAMES)
    expected: dict[str, int] = {}
    for event in events:
        expected[event["type"]] = expected.get(event["type"], 0) + 1
    assert body["event_counts"] == expected
    lines = body["breakdown"]
    # 17 parts (the 5 observed ones are left out while no rep logged anything) and a
    # confidence line per index.
    assert len(lines) == 19 and all(set(line) == BREAKDOWN_KEYS for line in lines)
    for index in ("cs", "op"):
        points = sum(line["points"] for line in lines if line["index"] == index)
        assert points == pytest.approx(body[index], abs=0.05)
    assert all(line["explanation"] for line in lines)

    busy = (await stack.get("scoring", f"/v1/accounts/{list(accounts)[6]}")).json()
    assert busy["event_counts"]["product_usage"] == 36
    assert busy["cs"] > body["cs"]  # usage and adoption count


async def test_unknown_account_is_404_and_the_token_is_required(stack, accounts) -> None:
    missing = await stack.get("scoring", "/v1/accounts/no-such-account-anywhere")
    assert missing.status_code == 404 and "no-such-account-anywhere" in missing.text
    url = f"{stack.urls['scoring']}/v1/accounts/{next(iter(accounts))}"
    async with httpx.AsyncClient(timeout=10) as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic x"}):
            for path in (
                url,
                f"{stack.urls['scoring']}/v1/accounts",
                f"{stack.urls['scoring']}/v1/segments",
            ):
                response = await client.get(path, headers=headers)
                assert response.status_code == 401, (path, headers, response.text)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"order": "name"}, "order"),
        ({"order": "cs;drop"}, "order"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"segment": "whales"}, "segment"),
        ({"priority": "urgent"}, "priority"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "x" * 600}, "cursor"),
        # Well-formed base64 JSON, but with a NUL that PostgreSQL text cannot hold.
        ({"cursor": "WzEuMCwiYVx1MDAwMCJd"}, "cursor"),
        ({"cursor": "W3t9LCJhIl0"}, "cursor"),
    ],
)
async def test_bad_list_parameters_are_422(stack, params, field) -> None:
    response = await stack.get("scoring", "/v1/accounts", **params)
    assert response.status_code == 422, response.text
    assert field in response.text


async def _walk(stack, order: str, limit: int, **filters) -> list[dict]:
    items, cursor, pages = [], None, 0
    while True:
        params = {"order": order, "limit": limit, **filters}
        if cursor:
            params["cursor"] = cursor
        response = await stack.get("scoring", "/v1/accounts", **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            return items
        assert len(page["items"]) == limit and pages < 1000


@pytest.mark.parametrize("order", ["cs", "-cs", "op", "-op"])
async def test_keyset_pagination_visits_every_account_once_in_order(stack, accounts, order) -> None:
    column, descending = order.lstrip("-"), order.startswith("-")
    paged = await _walk(stack, order, limit=3)
    keys = [(item[column], item["account_id"]) for item in paged]
    # Strictly ordered across page boundaries: no account twice, none skipped between pages.
    assert keys == sorted(keys, reverse=descending)
    assert len({item["account_id"] for item in paged}) == len(paged)
    mine = [item["account_id"] for item in paged if item["account_id"] in accounts]
    assert sorted(mine) == sorted(accounts)
    whole = (await stack.get("scoring", "/v1/accounts", order=order, limit=500)).json()["items"]
    assert mine == [i["account_id"] for i in whole if i["account_id"] in accounts]


async def test_a_cursor_continues_only_the_listing_it_came_from(stack, accounts) -> None:
    first = (await stack.get("scoring", "/v1/accounts", order="-op", limit=2)).json()
    cursor = first["next_cursor"]
    assert cursor
    same = await stack.get("scoring", "/v1/accounts", order="-op", limit=2, cursor=cursor)
    assert same.status_code == 200
    assert not {i["account_id"] for i in same.json()["items"]} & {
        i["account_id"] for i in first["items"]
    }
    for other in ({"order": "cs"}, {"segment": "expand"}, {"priority": "high"}):
        params = {"order": "-op", "limit": 2, "cursor": cursor, **other}
        response = await stack.get("scoring", "/v1/accounts", **params)
        assert response.status_code == 422, (other, response.text)
        assert "cursor belongs to another order" in response.text


async def test_an_account_id_with_a_slash_is_found(stack) -> None:
    account = f"org/{uuid.uuid4().hex[:6]}/eu"
    await stack.post_events([{"type": "account_update", "account_id": account, "name": "Slash"}])

    async def scored() -> bool:
        response = await stack.get("scoring", f"/v1/accounts/{quote(account, safe='')}")
        return response.status_code == 200

    await stack.wait_for(scored, within=60)
    for path in (quote(account, safe=""), account):
        body = (await stack.get("scoring", f"/v1/accounts/{path}")).json()
        assert body["account_id"] == account and body["attributes"]["name"] == "Slash"
    # The list with a trailing slash is not an empty account id: it goes to the list.
    slashed = await stack.get("scoring", "/v1/accounts/", order="cs", limit=2)
    assert slashed.status_code == 307
    assert slashed.headers["location"].endswith("/v1/accounts?order=cs&limit=2")


async def test_filters_by_segment_and_priority(stack, accounts) -> None:
    mine = [(await stack.get("scoring", f"/v1/accounts/{a}")).json() for a in accounts]
    segment, priority = mine[0]["segment"], mine[0]["priority"]
    items = await _walk(stack, "-cs", limit=2, segment=segment, priority=priority)
    assert items and all(i["segment"] == segment and i["priority"] == priority for i in items)
    expected = {
        m["account_id"] for m in mine if (m["segment"], m["priority"]) == (segment, priority)
    }
    assert expected <= {i["account_id"] for i in items}


async def test_segment_counts_are_shaped_for_a_chart(stack, accounts) -> None:
    response = await stack.get("scoring", "/v1/segments")
    assert response.status_code == 200
    chart = response.json()
    assert chart["segments"] == ["expand", "recover", "nurture", "at_risk", "insufficient_data"]
    assert chart["priorities"] == ["high", "medium", "low"]
    assert set(chart["totals"]) == set(chart["segments"])
    assert chart["cutoffs"] == {"cs_high": 60, "op_high": 50}  # the default scoring.yaml
    for count in chart["counts"]:
        assert set(count) == {"segment", "priority", "accounts"} and count["accounts"] > 0
    for segment in chart["segments"]:
        in_counts = sum(c["accounts"] for c in chart["counts"] if c["segment"] == segment)
        assert chart["totals"][segment] == in_counts
    listed = await _walk(stack, "cs", limit=500)
    assert sum(chart["totals"].values()) >= len(accounts)
    assert sum(chart["totals"].values()) == pytest.approx(len(listed), abs=5)
