"""What reps know, on the console (issue #18), in a real browser (Debian's Chromium,
JavaScript off) against the whole stack under `kizashi up`: a rep logs a key-person change
and sees the signal it raises arrive; logs phase evidence and sees the phase move (the panel,
and the phase scoring stored); bad input gets the form back with the reason, never a 500;
a note is shown as text; a form without its CSRF token, or about another rep's account, is
refused; and the KPI page shows the rep's funnel. With KIZASHI_SCREENSHOTS=1 the phase panel
and the KPI page are written to docs/console-phase.png and docs/console-kpis.png (the README's).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.console import add_person, sign_in

pytestmark = pytest.mark.e2e

HOSTILE = "<script>alert(1)</script> <b>bold</b>"
SCREENS = Path(__file__).resolve().parents[2] / "docs"


async def _screenshot(page, name: str) -> None:
    if os.environ.get("KIZASHI_SCREENSHOTS") == "1":
        await page.screenshot(path=str(SCREENS / name), full_page=True)


@pytest.fixture
async def page(browser):
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    yield page
    await context.close()


async def _account(stack, owner: str) -> str:
    account = f"obs-{uuid.uuid4().hex[:8]}"
    await stack.post_events(
        [
            {
                "type": "account_update",
                "account_id": account,
                "event_id": uuid.uuid4().hex,
                "name": f"Observed {account}",
                "arr": 30000,
                "owner_email": owner,
            }
        ]
    )

    async def known():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        return response.status_code == 200

    await stack.wait_for(known, within=60)
    return account


async def _reload_until(stack, page, url: str, probe, within: float = 60):
    async def check():
        await page.goto(url)
        return await probe()

    return await stack.wait_for(check, within=within, interval=0.5)


async def test_a_key_person_change_logged_on_the_page_raises_its_signal(stack, page) -> None:
    rep = await add_person(stack, "rep")
    account = await _account(stack, rep)
    url = f"{stack.urls['console']}/accounts/{account}"
    await sign_in(page, stack, rep)
    await page.goto(url)
    form = page.locator("details[data-kind=key_person_change]")
    await form.locator("summary").click()
    await form.locator("input[name=person]").fill("Dana Decider")
    await form.locator("input[name=role]").fill("Head of operations")
    await form.locator("select[name=change]").select_option("left")
    await form.locator("input[name=is_decision_maker]").check()
    await form.locator("textarea[name=note]").fill(HOSTILE)
    await form.locator("button[type=submit]").click()
    assert "Logged: Key person change." in await page.inner_text("main")

    timeline = page.locator("li.event.observation")

    async def shown():
        return await timeline.count() == 1

    await _reload_until(stack, page, url, shown)
    item = await timeline.inner_text()
    assert "key person change" in item.lower() and f"by {rep}" in item
    assert "Who: Dana Decider · Their role: Head of operations · Change: left" in item
    assert "A decision maker: yes" in item
    assert HOSTILE in item and await page.locator("li.observation b").count() == 0

    async def signal():
        response = await stack.get("triggers", "/v1/signals", account_id=account)
        rules = {s["rule"]: s for s in response.json()}
        return rules.get("key_person_left")

    raised = await stack.wait_for(signal, within=60)
    assert raised["kind"] == "churn_risk"
    await page.goto(url)
    assert await page.locator(f"a[href='/signals/{raised['signal_id']}']").count() == 1


async def test_phase_evidence_moves_the_phase(stack, page) -> None:
    rep = await add_person(stack, "rep")
    account = await _account(stack, rep)
    url = f"{stack.urls['console']}/accounts/{account}"
    await sign_in(page, stack, rep)
    await page.goto(url)
    panel = page.locator("#phase")
    assert await panel.get_attribute("data-phase") == "0"
    items = await page.locator("ul.missing li").all()
    missing = [await li.get_attribute("data-criterion") for li in items]
    assert missing == ["contact_replied", "meeting_agreed"]

    # The first criterion from the form, the second from the next-actions list.
    form = page.locator("details[data-kind=phase_evidence]")
    await form.locator("summary").click()
    await form.locator("select[name=criterion]").select_option("contact_replied")
    await form.locator("button[type=submit]").click()
    assert "Logged: Phase evidence." in await page.inner_text("main")

    async def one_left():
        return await page.locator("ul.missing li").count() == 1

    await _reload_until(stack, page, url, one_left)
    assert await panel.get_attribute("data-phase") == "0"
    met = page.locator("tr.criterion-met[data-criterion=contact_replied]")
    assert rep in await met.inner_text()
    await page.locator("ul.missing li[data-criterion=meeting_agreed] button").click()

    async def moved():
        return await panel.get_attribute("data-phase") == "1"

    await _reload_until(stack, page, url, moved)
    assert "1 · Meeting possible" in await page.inner_text("#phase h2")
    # Now the next actions are phase 2's.
    assert await page.locator("ul.missing li[data-criterion=met_in_person]").count() == 1

    async def scored():
        await page.goto(url)
        return await panel.get_attribute("data-scored-phase") == "1"

    await stack.wait_for(scored, within=60, interval=0.5)
    await _screenshot(page, "console-phase.png")


async def test_bad_input_gets_the_form_back_with_the_reason(stack, page) -> None:
    rep = await add_person(stack, "rep")
    account = await _account(stack, rep)
    url = f"{stack.urls['console']}/accounts/{account}"
    await sign_in(page, stack, rep)
    await page.goto(url)
    form = page.locator("details[data-kind=competitor_trouble]")
    await form.locator("summary").click()
    await form.locator("input[name=competitor]").fill("Rival Co")
    # "What happened" left empty, and a note over the limit.
    await form.locator("textarea[name=note]").fill("x" * 2001)
    async with page.expect_response(lambda r: r.url.endswith("/observations")) as answer:
        await form.locator("button[type=submit]").click()
    assert (await answer.value).status == 422
    errors = await page.inner_text("div.errors")
    assert "Not logged" in errors and "what: is required" in errors
    assert "at most 2000" in errors
    # What was typed is still there, in the open form.
    reopened = page.locator("details[data-kind=competitor_trouble][open]")
    assert await reopened.locator("input[name=competitor]").input_value() == "Rival Co"


async def test_forms_without_a_token_about_anothers_account_or_with_a_made_up_criterion(
    stack, page
) -> None:
    rep, other = await add_person(stack, "rep"), await add_person(stack, "rep")
    mine, theirs = await _account(stack, rep), await _account(stack, other)
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    await page.goto(f"{console}/accounts/{mine}")
    csrf = await page.locator("form.observation input[name=csrf]").first.get_attribute("value")
    base = {"kind": "phase_evidence", "criterion": "contact_replied", "event_id": "e1"}
    async with httpx.AsyncClient(base_url=console, cookies=cookies, timeout=15) as client:
        no_token = await client.post("/observations", data={**base, "account_id": mine})
        assert no_token.status_code == 403 and "security token" in no_token.text
        foreign = await client.post(
            "/observations", data={**base, "account_id": theirs, "csrf": csrf}
        )
        assert foreign.status_code == 403 and "Not your account" in foreign.text
        made_up = await client.post(
            "/observations",
            data={**base, "account_id": mine, "csrf": csrf, "criterion": "likes_us"},
        )
        assert made_up.status_code == 422
        assert "&#39;likes_us&#39; is not a criterion in phases.yaml" in made_up.text
        unknown = await client.post(
            "/observations", data={**base, "account_id": mine, "csrf": csrf, "kind": "gossip"}
        )
        assert unknown.status_code == 422 and "one of key_person_change" in unknown.text
        future = await client.post(
            "/observations",
            data={**base, "account_id": mine, "csrf": csrf, "occurred_on": "2999-01-01"},
        )
        assert future.status_code == 422 and "in the future" in future.text
        nobody = await client.post(
            "/observations", data={**base, "account_id": "no-such-account", "csrf": csrf}
        )
        assert nobody.status_code == 404


async def test_the_kpi_page_shows_the_reps_funnel(stack, page) -> None:
    rep = await add_person(stack, "rep", name="Kip Rep")
    await _account(stack, rep)
    await sign_in(page, stack, rep)
    await page.goto(f"{stack.urls['console']}/kpis")
    section = page.locator(f"section.rep-kpis[data-rep='{rep}']")
    assert await section.count() == 1
    assert await section.locator("svg.funnel g.step").count() == 5
    assert (
        await section.locator("svg.funnel g.step[data-phase='0']").get_attribute("data-count")
        == "1"
    )
    assert await page.locator("section.rep-kpis").count() == 1  # a rep sees their own only
    await _screenshot(page, "console-kpis.png")
    csv_link = await page.locator("a.csv").get_attribute("href")
    assert csv_link.startswith("/v1/kpis.csv")
