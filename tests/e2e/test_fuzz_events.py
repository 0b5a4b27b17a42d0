"""Property-based events against the running stack, on both ingest APIs: no answer is a 500,
every refusal names its index, field and reason, and every accepted event is applied by
scoring with nothing dead-lettered ("accepted means applied", issue #16).

Hypothesis generates native events and Segment calls around the limits (nesting, times in
every offset from year 1 to 9999, NUL, long ids, numbers that are booleans or strings,
attributes); a fixed seed and a bounded number of examples keep the run well under a minute.
"""

import asyncio
import base64
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kizashi.contracts.limits import MAX_JSON_DEPTH
from tests.support.deadletters import dead_letters_for

pytestmark = pytest.mark.e2e

EXAMPLES = 50
RUN = uuid.uuid4().hex[:8]
ACCOUNTS = [f"fz-{RUN}-{name}" for name in ("a", "b", "c")]

texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "nul\x00", "x" * 129, "ok", "é"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


@st.composite
def nested(draw) -> dict:
    """An object, sometimes wrapped deep (up to 230 levels: orjson writes no more than 254)."""
    value = draw(st.dictionaries(texts, json_values, max_size=4))
    depth = draw(st.sampled_from([0, 0, 1, MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, 60, 201, 230]))
    for _ in range(depth):
        value = {"x": value}
    return value


@st.composite
def times(draw) -> str:
    offset = timezone(timedelta(minutes=draw(st.integers(-14 * 60, 14 * 60))))
    if draw(st.booleans()):
        moment = datetime.now(UTC) - timedelta(seconds=draw(st.integers(-900, 90 * 86_400)))
    else:
        moment = draw(st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30))).replace(tzinfo=UTC)
    return moment.astimezone(offset).isoformat()


numbers = st.integers(-2, 12) | st.floats(-1, 1e13) | st.booleans() | st.sampled_from(["3", ""])
accounts = st.sampled_from(ACCOUNTS) | st.sampled_from(["", "nul\x00", "y" * 129])
ids = st.sampled_from([None, "u1", "u2", 42, True, "", "nul\x00", "u" * 129, "u" * 128])


@st.composite
def native_event(draw) -> dict:
    kind = draw(
        st.sampled_from(
            [
                "product_usage",
                "email_engagement",
                "web_visit",
                "survey_response",
                "account_update",
                "support_ticket",
                "purchase",
            ]
        )
    )
    event: dict = {"type": kind, "account_id": draw(accounts)}
    optional = {
        "user_id": ids,
        "occurred_at": times(),
        "properties": nested(),
    }
    typed = {
        "product_usage": {"action": texts, "feature": texts, "quantity": numbers},
        "email_engagement": {
            "action": st.sampled_from(["open", "click", "x"]),
            "campaign_id": texts,
            "tags": st.lists(texts, max_size=3),
        },
        "web_visit": {
            "url": st.sampled_from(["https://a.io/pricing", "", "x\x00"]),
            "duration_s": numbers,
        },
        "survey_response": {
            "survey_id": texts,
            "nps": numbers,
            "csat": numbers,
            "upsell_intent": numbers,
        },
        "account_update": {
            "name": texts,
            "arr": numbers,
            "seats": numbers,
            "attributes": nested(),
            "renewal_date": st.sampled_from(["2027-01-01", "0001-01-01", "9999-12-31", "soon"]),
            "fiscal_year_end": numbers,
        },
        "support_ticket": {
            "ticket_id": ids,
            "status": st.sampled_from(["opened", "solved", "reopened", "closed"]),
            "first_response_s": numbers,
            "topic": texts,
        },
        "purchase": {
            "order_id": ids,
            "amount": numbers,
            "currency": st.sampled_from(["USD", "eur", "XYZ", "", 840, "nul\x00"]),
            "product": texts,
            "kind": st.sampled_from(["new", "upsell", "cross_sell", "renewal", "refund"]),
        },
    }[kind]
    # The newer types' fields are always drawn (each may still be a bad value), so that some
    # of them pass: with every field a coin toss, hardly any purchase would.
    always = kind in ("support_ticket", "purchase")
    for name, strategy in {**optional, **typed}.items():
        if (always and name in typed) or draw(st.booleans()):
            value = draw(strategy)
            if value is not None:
                event[name] = value
    return event


@st.composite
def segment_call(draw) -> dict:
    kind = draw(st.sampled_from(["track", "page", "group", "identify"]))
    call: dict = {"type": kind}
    user = draw(ids)
    if user is not None:
        call["userId"] = user
    if draw(st.booleans()):
        call["timestamp"] = draw(times())
    account = draw(accounts)
    if kind in ("track", "page"):
        call["context"] = {"groupId": account}
        call["properties"] = draw(nested())
        if kind == "track":
            call["event"] = draw(st.sampled_from(["Login", "NPS Survey Submitted", ""]))
            if call["event"].startswith("NPS"):
                call["properties"]["score"] = draw(numbers)
        else:
            call["properties"]["url"] = "https://a.io/docs"
    elif kind == "group":
        call["groupId"] = account
        call["traits"] = {**draw(nested()), "seats": draw(numbers)}
    else:
        call["traits"] = {"groupId": account}
    return call


class Tally:
    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.problems: list[str] = []

    def check_rejections(self, rejected: list[dict], size: int, answer: str) -> set[int]:
        for rejection in rejected:
            if not (0 <= rejection["index"] < size and rejection["field"] and rejection["reason"]):
                self.problems.append(f"unclear rejection {rejection} in {answer[:500]}")
        return {r["index"] for r in rejected}


def _fuzz(base_url: str, key: str, tally: Tally) -> None:
    bearer = {"Authorization": f"Bearer {key}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    common = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    with httpx.Client(base_url=base_url, timeout=30) as client:

        @common
        @given(st.lists(native_event(), min_size=1, max_size=8))
        def native(events: list[dict]) -> None:
            response = client.post(
                "/v1/events",
                content=orjson.dumps({"events": events}),
                headers={**bearer, "Content-Type": "application/json"},
            )
            if response.status_code not in (202, 422):
                tally.problems.append(f"native {response.status_code}: {response.text[:500]}")
                return
            refused = tally.check_rejections(
                response.json()["rejected"], len(events), response.text
            )
            for index, event in enumerate(events):
                if index not in refused:
                    tally.accepted[event["account_id"]] += 1

        @common
        @given(st.lists(segment_call(), min_size=1, max_size=8))
        def segment(calls: list[dict]) -> None:
            response = client.post(
                "/v1/batch",
                content=orjson.dumps({"batch": calls}),
                headers={**basic, "Content-Type": "application/json"},
            )
            if response.status_code not in (200, 400, 422):
                tally.problems.append(f"segment {response.status_code}: {response.text[:500]}")
                return
            body = response.json()
            refused = tally.check_rejections(body.get("rejected", []), len(calls), response.text)
            for index, call in enumerate(calls):
                if index in refused or call["type"] == "identify":
                    continue
                account = call["groupId"] if call["type"] == "group" else call["context"]["groupId"]
                tally.accepted[account] += 1

        native()
        segment()


async def test_fuzzed_events_are_refused_clearly_or_applied(stack, bootstrap_servers):
    tally = Tally()
    await asyncio.to_thread(_fuzz, stack.urls["ingest"], stack.ingest_key, tally)
    assert not tally.problems, "\n".join(tally.problems[:10])
    assert set(tally.accepted) <= set(ACCOUNTS), tally.accepted
    # Not vacuous: with this seed about 15-25 of the ~400 generated events pass every limit
    # (the count differed between two trees with the same generator; see the closing note).
    assert sum(tally.accepted.values()) >= 10, "the fuzzer should get some events through"

    async def applied() -> dict[str, int]:
        counts = {}
        for account in ACCOUNTS:
            response = await stack.get("scoring", f"/v1/accounts/{account}")
            found = response.json()["event_counts"] if response.status_code == 200 else {}
            counts[account] = sum(found.values())
        return counts

    wanted = {account: tally.accepted[account] for account in ACCOUNTS}

    async def settled():
        return await applied() == wanted

    try:
        await stack.wait_for(settled, within=60)
    except AssertionError:
        letters = await dead_letters_for(bootstrap_servers, set(ACCOUNTS))
        pytest.fail(
            f"applied {await applied()} != accepted {wanted}; dead letters: "
            + "; ".join(letter["reason"][:300] for letter in letters[:5])
        )
    # Alerts the fuzzed answers raise may fail delivery (no owner_email to mail): those dead
    # letters are about receivers. Nothing may be dead-lettered for what it holds.
    letters = await dead_letters_for(bootstrap_servers, set(ACCOUNTS))
    undecodable = [letter for letter in letters if letter["error_type"] != "DeliveryFailed"]
    assert undecodable == [], [letter["reason"][:300] for letter in undecodable]
