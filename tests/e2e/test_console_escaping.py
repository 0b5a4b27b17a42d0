"""User text is shown as text everywhere: an account named like markup or a Slack mention is
escaped on the console's pages (checked in Chromium with JavaScript on: no script runs), in
the Slack message and in the email (its HTML part and its headers). And an alert's signed
links act as, and record, the person the alert was sent to."""

from __future__ import annotations

import httpx
import orjson
import pytest

from kizashi.runtime.signing import verify_action_for
from kizashi.tools.stack import credentials_file, read_env_file
from tests.support.console import add_person, sign_in, signal_for

pytestmark = pytest.mark.e2e

HOSTILE = "<script>alert(1)</script> <!channel> <b>bold</b>"
# A header injection attempt rides along: it must not become a header of the email.
HOSTILE_WITH_HEADER = HOSTILE + "\r\nBcc: thief@evil.example"


def _mrkdwn_texts(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for value in node.values() for t in _mrkdwn_texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in _mrkdwn_texts(value)]
    return []


def _mine(records, needle: str):
    return [r for r in records if needle in orjson.dumps(r.json).decode()]


async def test_a_hostile_account_name_is_text_on_the_console_in_slack_and_email(
    stack, browser, webhook, smtp
) -> None:
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep, name=HOSTILE_WITH_HEADER, contact_name=HOSTILE)
    sid, account = signal["signal_id"], signal["account_id"]

    context = await browser.new_context(java_script_enabled=True)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    try:
        await sign_in(page, stack, rep)
        console = stack.urls["console"]
        for path in ("/signals?owner=mine", f"/signals/{sid}", f"/accounts/{account}"):
            await page.goto(f"{console}{path}")
            text = await page.inner_text("main")
            assert "<script>alert(1)</script>" in text, path  # shown, as text
            assert "<!channel>" in text and "<b>bold</b>" in text, path
            assert await page.locator("main b").count() == 0, path  # not markup
            assert await page.locator("main script").count() == 0, path
        # The customer's contact, on the account page (the last one visited), is text too.
        assert HOSTILE in await page.inner_text("#customer-emails")
        # The map (a point's hover title) and the account list, new in the console's 2nd half.
        await page.goto(f"{console}/?owner=mine")
        titles = await page.locator("svg.kz-map title").all_text_contents()
        assert any(t.startswith(HOSTILE) for t in titles)  # the name, as text
        assert await page.locator("svg.kz-map b, svg.kz-map script").count() == 0
        await page.goto(f"{console}/accounts?owner=mine")
        assert "<script>alert(1)</script>" in await page.inner_text("table#accounts")
        assert await page.locator("main b, main script").count() == 0
        assert dialogs == []
    finally:
        await context.close()

    async def slack_message():
        return _mine(webhook.requests_to("/slack"), sid)

    (message,) = await stack.wait_for(slack_message, within=30)
    # Slack parses mentions and links in mrkdwn and in the message's `text`: escaped there.
    # `plain_text` objects (the header) are never parsed, so they carry the name as written.
    parsed = [message.json["text"], *_mrkdwn_texts(message.json)]
    assert any("&lt;!channel&gt;" in text for text in parsed)
    assert not any("<!channel>" in text or "<script>" in text for text in parsed)

    async def email():
        return [m for m in smtp.messages if rep in str(m["To"])]

    (mail,) = await stack.wait_for(email, within=30)
    assert mail["Bcc"] is None and "thief@evil.example" not in str(mail["To"])
    assert "\n" not in str(mail["Subject"]) and "<script>alert(1)</script>" in str(mail["Subject"])
    html = mail.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    envelope = smtp.envelopes[smtp.messages.index(mail)]
    assert envelope.rcpt_tos == [rep]


async def test_alert_links_act_as_and_record_the_person_they_were_sent_to(
    stack, webhook, smtp
) -> None:
    rep = await add_person(stack, "rep")
    signal = await signal_for(stack, rep)
    sid = signal["signal_id"]

    async def email():
        return [m for m in smtp.messages if sid in m.as_string()]

    (mail,) = await stack.wait_for(email, within=30)
    text = mail.get_body(("plain",)).get_content()
    ack = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Ack"))
    token = ack.rsplit("/", 1)[1]
    secret = read_env_file(credentials_file(stack.data_dir))["KIZASHI_ACTION_SECRET"]
    assert verify_action_for(token, [secret])[2] == rep  # the recipient is in the signed link
    async with httpx.AsyncClient(timeout=15) as browser_like:
        # The link's host is KIZASHI_PUBLIC_URL's; the test stack listens on its own port.
        done = await browser_like.post(f"{stack.urls['triggers']}/v1/actions/{token.strip()}")
    assert done.status_code == 200, done.text
    view = (await stack.get("triggers", f"/v1/signals/{sid}")).json()
    assert view["actions"][-1] == {**view["actions"][-1], "action": "acknowledged", "actor": rep}
