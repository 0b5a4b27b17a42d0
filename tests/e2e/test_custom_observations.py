"""A team's own observation kind (observations.yaml, issue #18) against the running stack,
whose KIZASHI_CONFIG_DIR adds `site_visit` (tests.support.stack.CUSTOM_KINDS): ingest takes a
site visit and refuses bad ones with a 4xx naming the field; scoring stores it in the
`observations` table with its fields; the console's account page shows it in the timeline and
offers the kind, with its hint and fields, in its form, which logs one. One more ingest
server, whose observations.yaml switches `relocation` off, refuses relocations."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx
import orjson
import pytest

from kizashi.tools.embedded import free_port
from tests.support.console import add_person, sign_in

pytestmark = pytest.mark.e2e

GOOD_FIELDS = {
    "visited_on": "2026-11-30",
    "machines_seen": 3,
    "state": "worn",
    "summary": "Press <line> 2 leaks",
    "escorted": True,
}


def _visit(account: str, author: str, **body) -> dict:
    return {
        "type": "rep_observation",
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "author": author,
        "kind": "site_visit",
        "note": "walked the plant with their engineer",
        "fields": GOOD_FIELDS,
        **body,
    }


async def _post(stack, events: list[dict]):
    async with stack.ingest() as client:
        return await client.post("/v1/events", json={"events": events})


async def _account(stack, owner: str) -> str:
    account = f"visit-{uuid.uuid4().hex[:8]}"
    update = {
        "type": "account_update",
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "name": f"Visited {account}",
        "owner_email": owner,
    }
    assert (await stack.post_events([update]))["accepted"] == 1

    async def known():
        return (await stack.get("scoring", f"/v1/accounts/{account}")).status_code == 200

    await stack.wait_for(known, within=60)
    return account


async def test_bad_custom_observations_get_a_4xx_naming_the_field(stack):
    author = await add_person(stack, "rep")
    account = f"visit-bad-{uuid.uuid4().hex[:8]}"
    bad = [
        (_visit(account, author, fields={**GOOD_FIELDS, "colour": "red"}), "fields.colour"),
        (_visit(account, author, fields={"state": "new"}), "fields.visited_on"),
        (
            _visit(account, author, fields={**GOOD_FIELDS, "machines_seen": "3"}),
            "fields.machines_seen",
        ),
        (_visit(account, author, fields={**GOOD_FIELDS, "state": "gone"}), "fields.state"),
        (_visit(account, author, fields={**GOOD_FIELDS, "summary": "x" * 81}), "fields.summary"),
        (_visit(account, author, kind="golf_outing"), "kind"),
    ]
    response = await _post(stack, [event for event, _ in bad])
    assert response.status_code == 422, response.text
    rejected = response.json()["rejected"]
    assert [(r["index"], r["field"]) for r in rejected] == [
        (i, field) for i, (_, field) in enumerate(bad)
    ]
    reasons = [r["reason"] for r in rejected]
    assert reasons[0].startswith("unknown field of 'site_visit'; its fields: visited_on, ")
    assert reasons[1] == "required field is missing"
    assert reasons[2] == "must be a number, got '3'"
    assert reasons[3] == "must be one of new, worn, failing, got 'gone'"
    assert reasons[4] == "must be at most 80 characters, got 81"
    assert reasons[5].startswith("unknown observation kind: 'golf_outing' is not configured;")
    assert reasons[5].endswith("phase_evidence, site_visit")


async def test_a_site_visit_is_stored_and_shown_on_the_account_page(stack, browser):
    rep = await add_person(stack, "rep")
    account = await _account(stack, rep)
    visit = _visit(account, rep, occurred_at="2026-11-30T10:00:00Z")
    response = await _post(stack, [visit])
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1

    connection = await asyncpg.connect(stack.database_url)
    try:

        async def stored():
            return await connection.fetchrow(
                "SELECT author, kind, note, fields FROM observations"
                " WHERE account_id = $1 AND observation_id = $2",
                account,
                visit["event_id"],
            )

        row = await stack.wait_for(stored, within=60)
    finally:
        await connection.close()
    assert (row["author"], row["kind"], row["note"]) == (rep, "site_visit", visit["note"])
    assert orjson.loads(row["fields"]) == GOOD_FIELDS

    # A custom kind moves no score: the account's scores hold no trace of it.
    scored = (await stack.get("scoring", f"/v1/accounts/{account}")).json()
    assert "site_visit" not in orjson.dumps(scored).decode()

    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await sign_in(page, stack, rep)
        url = f"{stack.urls['console']}/accounts/{account}"
        await page.goto(url)
        item = page.locator("li.event.observation")
        assert await item.count() == 1
        text = await item.inner_text()
        assert "site visit" in text.lower() and f"by {rep}" in text
        assert "Visited on: 2026-11-30" in text and "Machines seen: 3" in text
        assert "State: worn" in text and "Escorted: yes" in text
        # The rep's text is shown as text, never markup.
        assert "Summary: Press <line> 2 leaks" in text
        assert await page.locator("li.observation line").count() == 0

        # The form offers the kind with its hint and its typed fields, and logs one.
        form = page.locator("details[data-kind=site_visit]")
        assert await form.count() == 1
        await form.locator("summary").click()
        assert "what did you see?" in await form.inner_text()
        assert await form.locator("input[type=number][name=machines_seen]").count() == 1
        assert await form.locator("input[name=summary]").get_attribute("maxlength") == "80"
        await form.locator("select[name=state]").select_option("failing")
        await form.locator("input[name=machines_seen]").fill("7")
        await form.locator("button[type=submit]").click()
        # Refused before anything is sent (no visit date), the reason next to the field.
        errors = page.locator("li.field-error[data-field=visited_on]")
        assert "is required" in await errors.inner_text()
        form = page.locator("details[data-kind=site_visit]")
        await form.locator("input[name=visited_on]").fill("2026-12-01")
        await form.locator("button[type=submit]").click()
        assert "Logged: Site visit." in await page.inner_text("main")

        async def two_shown():
            await page.goto(url)
            return await page.locator("li.event.observation").count() == 2 or None

        await stack.wait_for(two_shown, within=60, interval=0.5)
        newest = await page.locator("li.event.observation").first.inner_text()
        assert "Visited on: 2026-12-01" in newest and "State: failing" in newest
        assert "Machines seen: 7" in newest and "Escorted: no" in newest
    finally:
        await context.close()


@pytest.fixture
async def ingest_without_relocation(stack, database_url, bootstrap_servers, tmp_path):
    """One more ingest server (`kizashi serve ingest`) on the stack's database and broker,
    with an observations.yaml that switches `relocation` off; its base URL."""
    (tmp_path / "observations.yaml").write_text("kinds:\n  relocation: {enabled: false}\n")
    port = free_port()
    env = {
        **os.environ,
        "KIZASHI_DATABASE_URL": database_url,
        "KIZASHI_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KIZASHI_INGEST_KEYS": f"tests:{stack.ingest_key}",
        "KIZASHI_HOST": "127.0.0.1",
        "KIZASHI_INGEST_PORT": str(port),
        "KIZASHI_CONFIG_DIR": str(tmp_path),
        "KIZASHI_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "kizashi.tools.cli", "serve", "ingest"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{base}/readyz", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.returncode is None and time.monotonic() < deadline, "no ingest"
                await asyncio.sleep(0.2)
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_a_switched_off_kind_is_refused_naming_the_kinds_that_are_on(
    stack, ingest_without_relocation
):
    author = await add_person(stack, "rep")
    account = f"reloc-{uuid.uuid4().hex[:8]}"
    relocation = {
        "type": "rep_observation",
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "author": author,
        "kind": "relocation",
        "moving_on": "2027-01-01",
    }
    pain = {**relocation, "event_id": uuid.uuid4().hex, "kind": "customer_pain", "pain": "urgent"}
    del pain["moving_on"]
    headers = {"Authorization": f"Bearer {stack.ingest_key}"}
    async with httpx.AsyncClient(base_url=ingest_without_relocation, headers=headers) as client:
        refused = await client.post("/v1/events", json=relocation)
        assert refused.status_code == 422, refused.text
        [rejection] = refused.json()["rejected"]
        assert rejection["field"] == "kind"
        assert rejection["reason"] == (
            "unknown observation kind: 'relocation' is switched off in observations.yaml; "
            "expected one of renewal_timing, key_person_change, policy_change, "
            "competitor_trouble, customer_pain, satisfaction_with_rep, outcome_realised, "
            "phase_evidence"
        )
        taken = await client.post("/v1/events", json=pain)
        assert taken.status_code == 202, taken.text
