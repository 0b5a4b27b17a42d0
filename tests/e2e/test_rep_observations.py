"""rep_observation on ingest's native API (issue #18), against a running stack: what is
accepted reaches its own topic and is never dead-lettered; each bad observation gets a 4xx
that names the field and the problem."""

import asyncio
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
    # Scoring does not read the topic yet: nothing accepted is dead-lettered.
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
