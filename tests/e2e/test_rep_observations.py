"""rep_observation on ingest's native API (issue #18), against a running stack: what is
accepted reaches its own topic and is never dead-lettered; each bad observation gets a 4xx
that names the field and the problem; scoring applies it, and a decision maker's leaving
reaches the rep as a churn-risk alert with the observation in its reasons."""

import asyncio
import re
import uuid

import pytest

from kizashi.contracts.limits import MAX_NOTE_LENGTH
from kizashi.contracts.topics import REP_OBSERVATIONS
from tests.support.console import add_person, users_cli
from tests.support.deadletters import dead_letters_for, records_for

pytestmark = pytest.mark.e2e


def _observation(account: str, author: str, kind: str = "relocation", **fields) -> dict:
    return {
        "type": "rep_observation",
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "author": author,
        "kind": kind,
        "note": "heard at the quarterly review",
        **({"moving_on": "2026-09-01"} if kind == "relocation" else {}),
        **fields,
    }


async def _post(stack, events: list[dict]):
    async with stack.ingest() as client:
        return await client.post("/v1/events", json={"events": events})


async def test_observations_are_accepted_onto_their_topic_and_bad_ones_named(
    stack, bootstrap_servers
):
    author = await add_person(stack, "rep")
    account = f"never-seen-{uuid.uuid4().hex[:8]}"  # no event about it before
    good = [
        # The author in another case: users' emails are compared lower-case.
        _observation(account, author.upper(), "relocation"),
        _observation(
            account,
            author,
            "key_person_change",
            person="Ann Lee",
            role="CFO",
            change="left",
            is_decision_maker=True,
        ),
        _observation(account, author, "phase_evidence", criterion="designated_vendor"),
        _observation(account, author, "satisfaction_with_rep", satisfaction=5),
    ]
    bad = [
        (_observation(account, author, "gossip"), "kind", "unknown observation kind"),
        (
            _observation(account, author, note="x" * (MAX_NOTE_LENGTH + 1)),
            "note",
            f"at most {MAX_NOTE_LENGTH} characters",
        ),
        (
            _observation(account, author, "key_person_change", person="Ann", change="left"),
            "role",
            "Field required",
        ),
        (
            _observation(account, author, "satisfaction_with_rep", satisfaction="5"),
            "satisfaction",
            "valid integer",
        ),
        (
            _observation(account, "stranger@nowhere.example"),
            "author",
            "'stranger@nowhere.example' is not a known user",
        ),
        (
            _observation(account, author, "phase_evidence", criterion="golf_together"),
            "criterion",
            "'golf_together' is not a criterion in phases.yaml",
        ),
    ]
    response = await _post(stack, good + [event for event, _, _ in bad])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(good)
    assert body["event_ids"] == [event["event_id"] for event in good]
    rejected = body["rejected"]
    assert [r["index"] for r in rejected] == list(range(len(good), len(good) + len(bad)))
    for rejection, (event, field, says) in zip(rejected, bad, strict=True):
        assert rejection["field"] == field, rejection
        assert says in rejection["reason"], rejection
        assert rejection["event_id"] == event["event_id"]

    produced = await records_for(bootstrap_servers, REP_OBSERVATIONS, {account})
    assert sorted(r["event_id"] for r in produced) == sorted(e["event_id"] for e in good)
    assert {r["author"] for r in produced} == {author}
    assert {r["source"] for r in produced} == {"tests"}

    # Scoring applies them (the account is created with them); none is dead-lettered.
    async def applied():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        return response.status_code == 200 or None

    await stack.wait_for(applied)
    assert await dead_letters_for(bootstrap_servers, {account}) == []


async def test_a_request_of_only_bad_observations_is_422(stack):
    response = await _post(stack, [_observation("acct-422", "nobody@nowhere.example")])
    assert response.status_code == 422, response.text
    assert response.json()["rejected"][0]["field"] == "author"


async def test_a_disabled_user_no_longer_authors(stack):
    author = await add_person(stack, "rep")
    first = await _post(stack, [_observation("acct-disabled", author)])
    assert first.status_code == 202, first.text
    done = await asyncio.to_thread(users_cli, stack, "disable", author)
    assert done.returncode == 0, done.stderr
    second = await _post(stack, [_observation("acct-disabled", author)])
    assert second.status_code == 422, second.text
    assert second.json()["rejected"][0]["reason"] == f"'{author}' is not a known user"


async def test_a_decision_maker_leaving_reaches_the_webhook_as_a_churn_risk(stack, webhook):
    author = await add_person(stack, "rep")
    account = f"kpl-{uuid.uuid4().hex[:8]}"
    name = f"Globex {account}"
    facts = {
        "type": "account_update",
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "name": name,
        "owner_email": "alice@reps.example",
    }
    assert (await stack.post_events([facts]))["accepted"] == 1
    left = _observation(
        account,
        author,
        "key_person_change",
        person="Hank <Scorpio>",  # user text: escaped by each channel, never markup
        role="Chief Operating Officer",
        change="left",
        is_decision_maker=True,
    )
    response = await _post(stack, [left])
    assert response.status_code == 202, response.text

    async def signal():
        found = await stack.get("triggers", "/v1/signals", account_id=account)
        mine = [s for s in found.json() if s["rule"] == "key_person_left"]
        return mine[0] if mine else None

    fired = await stack.wait_for(signal)
    assert fired["kind"] == "churn_risk" and fired["priority"] == "high"
    assert fired["reasons"][0] == (
        "'Hank <Scorpio>' ('Chief Operating Officer'), a decision maker, left"
    )
    # Ingest stamped occurred_at (the request had none): the reason names that day.
    assert re.fullmatch(
        rf"Logged by '{re.escape(author)}' on \d{{4}}-\d{{2}}-\d{{2}}", fired["reasons"][1]
    )

    async def slack_message():
        mine = [r for r in webhook.requests_to("/slack") if name in str(r.json)]
        return mine or None

    [message] = await stack.wait_for(slack_message)
    text = str(message.json)
    assert "key person left" in text.lower()
    # Slack's escaping of the person's name, and the author named.
    assert "Hank &lt;Scorpio&gt;" in text and "<Scorpio>" not in text
    assert author in text
