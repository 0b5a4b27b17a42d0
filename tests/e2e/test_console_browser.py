"""The console in a real browser (Debian's Chromium, JavaScript off: the pages need none),
against the whole stack under `kizashi up`: sign-in, the inbox, acting as oneself, a rep
refused on another's account, sign-out, CSRF, personal tokens revoked at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.console import add_person, sign_in, signal_for, users_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
async def page(browser):
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    yield page
    await context.close()


async def test_no_page_without_a_session_then_sign_in_shows_the_inbox(stack, page) -> None:
    rep = await add_person(stack, "rep", name="Rita Rep")
    other = await add_person(stack, "rep")
    theirs = await signal_for(stack, other)
    mine = await signal_for(stack, rep)
    console = stack.urls["console"]

    for path in ("/", "/signals", "/tokens", f"/signals/{mine['signal_id']}"):
        await page.goto(f"{console}{path}")
        assert page.url.startswith(f"{console}/signin"), path

    await page.goto(f"{console}/signals")
    await page.fill("input[name=email]", rep.upper())  # emails match case-insensitively
    await page.fill("input[name=password]", "not the password")
    await page.click("button[type=submit]")
    assert "do not match" in await page.inner_text("main")

    await sign_in(page, stack, rep)
    await page.goto(f"{console}/signals")
    assert page.url == f"{console}/signals"
    assert "Rita Rep" in await page.inner_text("header")
    ids = [await a.get_attribute("id") for a in await page.query_selector_all("article.signal")]
    assert f"signal-{mine['signal_id']}" in ids and f"signal-{theirs['signal_id']}" in ids
    # Mine first.
    assert ids.index(f"signal-{mine['signal_id']}") < ids.index(f"signal-{theirs['signal_id']}")
    card = page.locator(f"#signal-{mine['signal_id']}")
    assert "NPS 2" in await card.inner_text()


async def test_ack_from_the_inbox_records_the_person(stack, page) -> None:
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep)
    sid = signal["signal_id"]
    await sign_in(page, stack, rep)
    await page.goto(f"{stack.urls['console']}/signals?owner=mine")
    await page.locator(f"#signal-{sid} form[action$='/ack'] button").click()
    assert "Acknowledged." in await page.inner_text("main")

    view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
    assert view["status"] == "acknowledged" and view["status_changed_by"] == rep
    assert [(a["action"], a["actor"]) for a in view["actions"]] == [("acknowledged", rep)]

    await page.goto(f"{stack.urls['console']}/signals/{sid}")
    assert rep in await page.locator("table.log").inner_text()
    # Snooze for a chosen duration, from the signal's own page.
    await page.select_option("select[name=hours]", "4")
    await page.locator("form[action$='/snooze'] button").click()
    assert "Snoozed." in await page.inner_text("main")
    view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
    assert view["status"] == "snoozed" and view["actions"][-1]["actor"] == rep
    until = datetime.fromisoformat(view["snoozed_until"]) - datetime.now(UTC)
    assert timedelta(hours=3, minutes=50) < until <= timedelta(hours=4)


async def _tabs(page) -> dict[str, int]:
    """The inbox's counts per status, as its tabs show them."""
    counts = {}
    for tab in await page.query_selector_all("ul.tabs li:has(span.count)"):
        counts[await (await tab.query_selector("a")).inner_text()] = int(
            await (await tab.query_selector("span.count")).inner_text()
        )
    return counts


async def _shown(page) -> set[str]:
    ids = [await a.get_attribute("id") for a in await page.query_selector_all("article.signal")]
    return {i.removeprefix("signal-") for i in ids}


async def test_the_inbox_filters_by_kind_rule_status_and_owner_with_counts(stack, page) -> None:
    rep = await add_person(stack, "rep")
    first, second = await signal_for(stack, rep), await signal_for(stack, rep)
    assert first["kind"] == second["kind"] == "churn_risk"
    await sign_in(page, stack, rep)
    inbox = f"{stack.urls['console']}/signals"
    await page.goto(f"{inbox}?owner=mine")
    assert await _shown(page) == {first["signal_id"], second["signal_id"]}
    assert await _tabs(page) == {
        "open": 2,
        "acknowledged": 0,
        "snoozed": 0,
        "resolved": 0,
        "retracted": 0,
    }

    await page.locator(f"#signal-{first['signal_id']} form[action$='/ack'] button").click()
    # The owner filter is a person's email too, as a manager would type it.
    await page.goto(f"{inbox}?owner={rep.upper()}")
    assert await _tabs(page) == {
        "open": 1,
        "acknowledged": 1,
        "snoozed": 0,
        "resolved": 0,
        "retracted": 0,
    }
    await page.goto(f"{inbox}?owner=mine&status=acknowledged")
    assert await _shown(page) == {first["signal_id"]}
    await page.goto(f"{inbox}?owner=mine&status=open")
    assert await _shown(page) == {second["signal_id"]}

    # Kind and rule, from the form's choices; the counts follow the filters.
    await page.goto(f"{inbox}?owner=mine")
    await page.select_option("select[name=kind]", "opportunity")
    await page.click("form.filters button")
    assert "kind=opportunity" in page.url
    assert await _shown(page) == set()
    assert sum((await _tabs(page)).values()) == 0
    await page.goto(f"{inbox}?owner=mine")
    await page.select_option("select[name=rule]", first["rule"])
    await page.click("form.filters button")
    assert await _shown(page) == {first["signal_id"], second["signal_id"]}
    assert await _tabs(page) == {
        "open": 1,
        "acknowledged": 1,
        "snoozed": 0,
        "resolved": 0,
        "retracted": 0,
    }


async def test_a_rep_is_refused_on_another_reps_account(stack, page) -> None:
    rep = await add_person(stack, "rep")
    other = await add_person(stack, "rep")
    manager = await add_person(stack, "manager")
    signal = await signal_for(stack, other)
    sid = signal["signal_id"]

    await sign_in(page, stack, rep)
    await page.goto(f"{stack.urls['console']}/signals/{sid}")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.locator("form[action$='/resolve'] button").click()
    assert (await answer.value).status == 403
    assert "Not yours to act on" in await page.inner_text("main")
    view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
    assert view["status"] == "open"

    # A manager may act on anyone's.
    await page.context.clear_cookies()
    await sign_in(page, stack, manager)
    await page.goto(f"{stack.urls['console']}/signals/{sid}")
    await page.locator("form[action$='/resolve'] button").click()
    assert "Resolved." in await page.inner_text("main")
    view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
    assert view["status"] == "resolved" and view["status_changed_by"] == manager


async def test_sign_out_closes_the_pages_and_the_session(stack, page) -> None:
    rep = await add_person(stack, "rep")
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert "kizashi_session" in cookies
    session = next(c for c in await page.context.cookies() if c["name"] == "kizashi_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"

    await page.click("form.signout button")
    assert page.url.startswith(f"{console}/signin")
    await page.goto(f"{console}/signals")
    assert page.url.startswith(f"{console}/signin")
    # The old cookie, replayed, opens nothing: the session is gone from the server.
    async with httpx.AsyncClient(cookies={"kizashi_session": cookies["kizashi_session"]}) as c:
        answer = await c.get(f"{console}/signals")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/signin")


async def test_a_form_post_without_its_csrf_token_is_refused(stack, page) -> None:
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep)
    sid = signal["signal_id"]
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    # The browser's own cookies, a form body without (or with a wrong) csrf field.
    for form in ({}, {"csrf": "forged"}):
        answer = await page.request.post(f"{console}/signals/{sid}/ack", form=form)
        assert answer.status == 403, await answer.text()
        assert "security token" in await answer.text()
    answer = await page.request.post(f"{console}/tokens", form={"name": "sneaky"})
    assert answer.status == 403
    answer = await page.request.post(f"{console}/signout", form={})
    assert answer.status == 403
    view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
    assert view["status"] == "open"
    # The sign-in form has its own token too.
    answer = await page.request.post(f"{console}/signin", form={"email": rep, "password": "x" * 12})
    assert answer.status == 403


async def test_a_revoked_personal_token_stops_working_at_once(stack, page) -> None:
    rep = await add_person(stack, "rep")
    other = await add_person(stack, "rep")
    mine, theirs = await signal_for(stack, rep), await signal_for(stack, other)
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    await page.goto(f"{console}/tokens")
    await page.fill("input[name=name]", "scripts")
    await page.locator("form.card button").click()
    token = (await page.inner_text("#new-token")).strip()
    assert token.startswith("kzp_")
    await page.goto(f"{console}/tokens")
    assert token not in await page.content()  # shown once

    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=bearer, timeout=15) as client:
        triggers, scoring = stack.urls["triggers"], stack.urls["scoring"]
        assert (await client.get(f"{triggers}/v1/signals")).status_code == 200
        assert (await client.get(f"{scoring}/v1/segments")).status_code == 200
        assert (await client.get(f"{stack.urls['notifier']}/v1/routes")).status_code == 200
        # Acting with it records the person, and a rep's limits hold (403, not a no-op).
        ack = await client.post(f"{triggers}/v1/signals/{mine['signal_id']}/ack", json={"by": "x"})
        assert ack.status_code == 200 and ack.json()["status_changed_by"] == rep
        refused = await client.post(f"{triggers}/v1/signals/{theirs['signal_id']}/ack")
        assert refused.status_code == 403 and "own accounts" in refused.json()["detail"]

        await page.locator("table.tokens form button").first.click()
        assert "revoked" in await page.locator("table.tokens").inner_text()
        answer = await client.get(f"{triggers}/v1/signals")
        assert answer.status_code == 401

    # A second token stops too when its person is disabled, and so does their session.
    await page.goto(f"{console}/tokens")
    await page.fill("input[name=name]", "second")
    await page.locator("form.card button").click()
    second = (await page.inner_text("#new-token")).strip()
    done = await asyncio.to_thread(users_cli, stack, "disable", rep)
    assert done.returncode == 0, done.stderr
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {second}"}) as client:
        assert (await client.get(f"{stack.urls['triggers']}/v1/signals")).status_code == 401
    await page.goto(f"{console}/signals")
    assert page.url.startswith(f"{console}/signin")


async def test_only_an_admin_manages_people_on_the_console(stack, browser, page) -> None:
    admin = await add_person(stack, "admin")
    manager = await add_person(stack, "manager")
    console = stack.urls["console"]
    await sign_in(page, stack, manager)
    await page.goto(f"{console}/people")
    assert "Admins only" in await page.inner_text("main")
    answer = await page.request.post(f"{console}/people", form={"email": "x@y.example"})
    assert answer.status == 403

    await page.context.clear_cookies()
    await sign_in(page, stack, admin)
    await page.goto(f"{console}/people")
    newcomer = f"new-{admin.split('@')[0]}@reps.example"
    await page.fill("input[name=email]", newcomer)
    await page.fill("input[name=name]", "<i>New</i> Rep")
    await page.select_option("select[name=role]", "rep")
    await page.locator("form.card button").click()
    password = (await page.inner_text("#new-password")).strip()
    assert "<i>New</i> Rep" in await page.inner_text("table.people")

    other = await browser.new_context(java_script_enabled=False)
    try:
        rep_page = await other.new_page()
        await sign_in(rep_page, stack, newcomer, password)
        await rep_page.goto(f"{console}/signals")
        assert rep_page.url == f"{console}/signals"
        # Disabled by the admin: the newcomer's open session ends at once.
        await page.locator(
            f"form[action='/people/{newcomer.replace('@', '%40')}/disable'] button"
        ).click()
        await rep_page.goto(f"{console}/signals")
        assert rep_page.url.startswith(f"{console}/signin")
    finally:
        await other.close()
