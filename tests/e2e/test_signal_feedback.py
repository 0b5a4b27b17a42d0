"""Feedback on a signal from every channel, through the whole stack: the Useful / Not useful
links of the real Slack message and email (a GET only shows the page, a POST records), the
API, and the console's form in a real browser. Each answer lands exactly once, the last one
counts, the history keeps them all, a bad answer changes nothing, and what a person typed is
shown as text."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.console import add_person, sign_in, signal_for

pytestmark = pytest.mark.e2e

HOSTILE = '<b id="hostile">Rita</b> & co'


@pytest.fixture
async def page(browser):
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    yield page
    await context.close()


def _at_triggers(stack, link: str) -> str:
    """The signed link, at the test stack's triggers (the token is what matters)."""
    assert "/v1/actions/" in link, link
    return f"{stack.urls['triggers']}/v1/actions/{link.rsplit('/v1/actions/', 1)[1]}"


async def _view(stack, sid: str) -> dict:
    response = await stack.get("triggers", f"/v1/signals/{sid}")
    assert response.status_code == 200, response.text
    return response.json()


async def _answers(stack, sid: str) -> list[tuple[str, bool, str | None, str]]:
    """(actor, useful, reason, channel) of every feedback row, oldest first."""
    view = await _view(stack, sid)
    return [
        (a["actor"], a["detail"]["useful"], a["detail"]["reason"], a["detail"]["channel"])
        for a in view["actions"]
        if a["action"] == "feedback"
    ]


async def _links(stack, webhook, smtp, sid: str) -> dict[str, str]:
    async def slack():
        found = [r.json for r in webhook.requests_to("/slack") if sid in str(r.json)]
        return found[0] if found else None

    async def email():
        found = [m for m in smtp.messages if sid in m.get_body(("plain",)).get_content()]
        return found[0] if found else None

    message = await stack.wait_for(slack, within=60)
    buttons = {
        e["action_id"]: e["url"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
    }
    mail = await stack.wait_for(email, within=60)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    email_useful = re.search(r"^Useful: +(\S+)$", text, re.MULTILINE)[1]
    email_not_useful = re.search(r"^Not useful: +(\S+)$", text, re.MULTILINE)[1]
    assert f'href="{email_not_useful}"' in html
    return {
        "slack_useful": _at_triggers(stack, buttons["kizashi_useful"]),
        "slack_not_useful": _at_triggers(stack, buttons["kizashi_not_useful"]),
        "email_useful": _at_triggers(stack, email_useful),
        "email_not_useful": _at_triggers(stack, email_not_useful),
    }


async def test_feedback_from_each_channel_lands_exactly_once(stack, webhook, smtp, page) -> None:
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep)
    sid = signal["signal_id"]
    assert signal["feedback"] is None
    links = await _links(stack, webhook, smtp, sid)
    assert await _answers(stack, sid) == []

    async with httpx.AsyncClient(timeout=15) as browser:
        # Slack's "Useful": a GET (a link preview, a mail scanner) records nothing.
        shown = await browser.get(links["slack_useful"])
        assert shown.status_code == 200 and "Mark as useful?" in shown.text
        assert "<form method='post'>" in shown.text
        assert await _answers(stack, sid) == []
        done = await browser.post(links["slack_useful"])
        assert done.status_code == 200 and "Recorded: this signal was useful" in done.text
        assert await _answers(stack, sid) == [(rep, True, None, "link")]

        # The email's "Not useful", with a reason picked on its page.
        shown = await browser.get(links["email_not_useful"])
        assert shown.status_code == 200 and "<select name='reason'>" in shown.text
        assert "<option value='false_alarm'>False alarm</option>" in shown.text
        for bad in ({"reason": "bored"}, {"reason": "x" * 65}):
            refused = await browser.post(links["email_not_useful"], data=bad)
            assert refused.status_code in (400, 422), refused.text
        refused = await browser.post(links["email_useful"], data={"reason": "false_alarm"})
        assert refused.status_code == 400
        assert len(await _answers(stack, sid)) == 1
        done = await browser.post(links["email_not_useful"], data={"reason": "false_alarm"})
        assert done.status_code == 200 and "not useful (false alarm)" in done.text
        assert (await _answers(stack, sid))[1:] == [(rep, False, "false_alarm", "link")]

    # The API, as the service token naming who answers (a name with markup in it).
    async with stack.api() as client:
        response = await client.post(
            f"{stack.urls['triggers']}/v1/signals/{sid}/feedback",
            json={"useful": True, "by": HOSTILE},
        )
    assert response.status_code == 200, response.text
    assert response.json()["useful"] is True and response.json()["by"] == HOSTILE
    assert (await _answers(stack, sid))[2:] == [(HOSTILE, True, None, "api")]

    # The console, signed in as the rep: the form, then the page with the answers.
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    await page.goto(f"{console}/signals/{sid}")
    current = await page.inner_text(".current-feedback")
    assert "useful" in current and HOSTILE in current
    assert await page.locator("b#hostile").count() == 0  # shown as text, never as markup
    # Without the form's CSRF token, or with a bad answer: refused, nothing recorded.
    assert (
        await page.request.post(f"{console}/signals/{sid}/feedback", form={"useful": "true"})
    ).status == 403
    csrf = await page.locator("form[action$='/feedback'] input[name=csrf]").first.get_attribute(
        "value"
    )
    for form in ({"useful": "maybe"}, {"useful": "false", "reason": "bored"}):
        answer = await page.request.post(
            f"{console}/signals/{sid}/feedback", form={"csrf": csrf, **form}
        )
        assert answer.status == 400, form
    assert len(await _answers(stack, sid)) == 3

    not_useful = page.locator("form[action$='/feedback']:has(input[name=useful][value=false])")
    await not_useful.locator("select[name=reason]").select_option("not_actionable")
    await not_useful.locator("button").click()
    assert "your feedback is recorded" in await page.inner_text("main")
    assert "not useful (not actionable)" in await page.inner_text(".current-feedback")
    history = await page.inner_text("table.log")
    assert "feedback: not useful (not actionable) via console" in history
    assert "feedback: useful via link" in history and HOSTILE in history

    # Four answers, one row each; the last one counts; the status is untouched.
    assert await _answers(stack, sid) == [
        (rep, True, None, "link"),
        (rep, False, "false_alarm", "link"),
        (HOSTILE, True, None, "api"),
        (rep, False, "not_actionable", "console"),
    ]
    view = await _view(stack, sid)
    assert view["status"] == "open"
    assert (view["feedback"]["useful"], view["feedback"]["reason"], view["feedback"]["by"]) == (
        False,
        "not_actionable",
        rep,
    )
    listed = await stack.get("triggers", "/v1/signals", account_id=view["account_id"])
    assert listed.json()[0]["feedback"]["reason"] == "not_actionable"

    await page.goto(f"{console}/signals?owner=mine")
    assert "not useful" in await page.inner_text(f"#signal-{sid} .feedback-mark")


async def test_a_rep_may_not_answer_for_another_owners_signal(stack, page) -> None:
    rep, other = await add_person(stack, "rep"), await add_person(stack, "rep")
    theirs = (await signal_for(stack, other))["signal_id"]
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    await page.goto(f"{console}/signals/{theirs}")
    csrf = await page.locator("form[action$='/feedback'] input[name=csrf]").first.get_attribute(
        "value"
    )
    refused = await page.request.post(
        f"{console}/signals/{theirs}/feedback", form={"csrf": csrf, "useful": "true"}
    )
    assert refused.status == 403
    # Nor through the API acting as them (what the console would send).
    async with stack.api() as client:
        response = await client.post(
            f"{stack.urls['triggers']}/v1/signals/{theirs}/feedback",
            json={"useful": False},
            headers={"X-Kizashi-Acting-User": rep},
        )
    assert response.status_code == 403, response.text
    assert await _answers(stack, theirs) == []
    assert (await _view(stack, theirs))["feedback"] is None


async def test_the_rules_pages(stack, page) -> None:
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep)
    async with stack.api() as client:
        response = await client.post(
            f"{stack.urls['triggers']}/v1/signals/{signal['signal_id']}/feedback",
            json={"useful": True},
        )
        assert response.status_code == 200, response.text
        api = (await client.get(f"{stack.urls['triggers']}/v1/rules/detractor/performance")).json()
    console = stack.urls["console"]
    await sign_in(page, stack, rep)
    await page.goto(f"{console}/rules")
    row = page.locator("table.rules tr", has=page.locator("a[href^='/rules/detractor']"))
    assert int(await row.locator("td.fired").inner_text()) >= 1
    assert int(await row.locator("td.useful").inner_text()) >= 1
    await page.goto(f"{console}/rules/detractor?period=90d")
    assert "By month" in await page.inner_text("main")
    # The console and the API agree (no other detractor feedback lands in between).
    assert int(await page.inner_text("table.figures td.useful")) == api["useful"]
    assert int(await page.inner_text("table.figures td.fired")) == api["signals_fired"]
    assert int(await page.inner_text("table.figures td.confirmed")) == api["confirmed"]
    assert int(await page.inner_text("table.figures td.averted")) == api["averted"]
    for path, status in (("/rules/no_such_rule", 404), ("/rules?period=6m", 400)):
        response = await page.goto(f"{console}{path}")
        assert response.status == status, path
