"""Outcomes through the whole stack (issue #19, item 2): account_updates posted to ingest
become a contraction and a churn (scoring reads them, triggers stores them once each), the
console's form records a renewal as the signed-in rep (CSRF, 4xx on bad input, a rep only on
their own accounts), and the churn-risk signal counts as confirmed in triggers' performance
API and on the console's rules page, which shows triggers' own figures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.console import add_person, sign_in, signal_for

pytestmark = pytest.mark.e2e

HOSTILE = '<b id="hostile">two more teams</b> & co'


@pytest.fixture
async def page(browser):
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    yield page
    await context.close()


async def _outcomes(stack, account: str) -> list[dict]:
    response = await stack.get("triggers", f"/v1/accounts/{account}/outcomes")
    assert response.status_code == 200, response.text
    return response.json()


async def _detractor(stack) -> dict:
    response = await stack.get("triggers", "/v1/rules/detractor/performance", period="90d")
    assert response.status_code == 200, response.text
    return response.json()


async def _update(stack, account: str, **facts) -> None:
    await stack.post_events(
        [{"type": "account_update", "account_id": account, "event_id": uuid.uuid4().hex, **facts}]
    )


async def test_outcomes_from_the_crm_and_the_console_judge_the_signal(stack, page) -> None:
    before = await _detractor(stack)
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep)  # a detractor churn risk; the account's ARR 40 000
    account = signal["account_id"]

    # The CRM says the ARR fell: a contraction of 10 000, stored once.
    await _update(stack, account, arr=30000.0)

    async def contracted():
        found = await _outcomes(stack, account)
        return found if found else None

    found = await stack.wait_for(contracted, within=60)
    assert [(o["kind"], o["amount"], o["source"]) for o in found] == [
        ("contraction", 10000.0, "crm")
    ]
    after = await _detractor(stack)
    assert after["confirmed"] == before["confirmed"] + 1
    assert after["averted"] == before["averted"]

    # Then the customer leaves: a churn of the 30 000 left.
    await _update(stack, account, status="churned")

    async def churned():
        kinds = [o["kind"] for o in await _outcomes(stack, account)]
        return kinds if "churn" in kinds else None

    await stack.wait_for(churned, within=60)
    churn = next(o for o in await _outcomes(stack, account) if o["kind"] == "churn")
    assert churn["amount"] == 30000.0
    assert (await _detractor(stack))["confirmed"] == before["confirmed"] + 1  # one signal

    # The console's form, as the rep who owns the account.
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    await page.goto(f"{console}/accounts/{account}")
    table = await page.inner_text("table.outcomes")
    assert "Contraction" in table and "10,000" in table and "Churn" in table
    form = page.locator("form.outcome-form")
    csrf = await form.locator("input[name=csrf]").get_attribute("value")
    count = len(await _outcomes(stack, account))
    today = datetime.now(UTC).date()
    assert (
        await page.request.post(
            f"{console}/accounts/{account}/outcomes",
            form={"kind": "renewal", "occurred_on": today.isoformat()},
        )
    ).status == 403  # no CSRF token
    for bad in (
        {"kind": "upsell", "occurred_on": today.isoformat()},
        {"kind": "renewal", "occurred_on": "yesterday"},
        {"kind": "renewal", "occurred_on": (today + timedelta(days=3)).isoformat()},
        {"kind": "renewal", "occurred_on": today.isoformat(), "amount": "lots"},
        {"kind": "renewal", "occurred_on": today.isoformat(), "amount": "-5"},
        {"kind": "renewal", "occurred_on": today.isoformat(), "amount": "nan"},
    ):
        refused = await page.request.post(
            f"{console}/accounts/{account}/outcomes", form={"csrf": csrf, **bad}
        )
        assert refused.status == 400, bad
    assert len(await _outcomes(stack, account)) == count

    await form.locator("select[name=kind]").select_option("renewal")
    await form.locator("input[name=amount]").fill("40,000")
    await form.locator("input[name=note]").fill(HOSTILE)
    await form.locator("button").click()
    assert "Outcome recorded." in await page.inner_text("main")
    assert HOSTILE in await page.inner_text("table.outcomes")
    assert await page.locator("b#hostile").count() == 0  # shown as text, never as markup
    renewal = next(o for o in await _outcomes(stack, account) if o["kind"] == "renewal")
    assert (renewal["amount"], renewal["source"], renewal["recorded_by"]) == (
        40000.0,
        "console",
        rep,
    )
    assert renewal["note"] == HOSTILE
    assert len(await _outcomes(stack, account)) == count + 1
    # Churn followed first: the signal stays confirmed, not averted.
    final = await _detractor(stack)
    assert (final["confirmed"], final["averted"]) == (before["confirmed"] + 1, before["averted"])

    # The rules page shows triggers' own figures.
    await page.goto(f"{console}/rules/detractor?period=90d")
    assert int(await page.inner_text("table.figures td.confirmed")) == final["confirmed"]
    assert int(await page.inner_text("table.figures td.averted")) == final["averted"]
    assert "not counted yet" not in await page.inner_text("main")


async def test_a_rep_may_not_record_an_outcome_for_another_owners_account(stack, page) -> None:
    rep, other = await add_person(stack, "rep"), await add_person(stack, "rep")
    theirs = (await signal_for(stack, other))["account_id"]
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    await page.goto(f"{console}/accounts/{theirs}")
    csrf = await page.locator("form.outcome-form input[name=csrf]").get_attribute("value")
    today = datetime.now(UTC).date().isoformat()
    refused = await page.request.post(
        f"{console}/accounts/{theirs}/outcomes",
        form={"csrf": csrf, "kind": "expansion", "occurred_on": today},
    )
    assert refused.status == 403
    async with stack.api() as client:
        response = await client.post(
            f"{stack.urls['triggers']}/v1/accounts/{theirs}/outcomes",
            json={"kind": "expansion", "occurred_at": datetime.now(UTC).isoformat()},
            headers={"X-Kizashi-Acting-User": rep},
        )
    assert response.status_code == 403, response.text
    assert await _outcomes(stack, theirs) == []
