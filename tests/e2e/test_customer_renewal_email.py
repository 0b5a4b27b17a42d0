"""The renewal playbook through the whole pipeline (issue #20, item 5), on a stack of its own
with the renewal playbook turned on: events in at ingest, scores from scoring, the
`renewal_window` signal from triggers, and the email from the notifier to the local SMTP
server.

A medium-priority account 90 days from its renewal gets exactly one email, at its contact,
from the template, with a working unsubscribe link; its rep gets nothing. A high-priority
one alerts its rep and writes to no customer. (The second signal after the unsubscribe, the
cap and the default-off case are tests/integration/test_customer_emails.py: renewal_window
fires once per contract year.)"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from kizashi.tools.embedded import EmbeddedBroker, free_port
from kizashi.tools.migrate import upgrade
from tests.support import infra
from tests.support.stack import start_stack

pytestmark = pytest.mark.e2e  # it starts a stack of its own

ROUTING = """
receivers:
  - name: mail
    type: email
    to: account_owner
default:
  receivers: [mail]
customer_emails:
  from: renewals@vendor.test
  playbooks:
    renewal_window: {enabled: true, priorities: [medium, low], template: renewal_window}
"""


def _run(coroutine) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, database_url, smtp):
    workdir = tmp_path_factory.mktemp("renewal-stack")
    broker = EmbeddedBroker(workdir / "broker", free_port())
    broker.start()
    database = f"kizashi_renewal_{uuid.uuid4().hex[:8]}"
    _run(infra._create_database(database_url, database))
    url = infra._with_database(database_url, database)
    upgrade(url)
    config_dir = workdir / "config"
    config_dir.mkdir()
    (config_dir / "routing.yaml").write_text(ROUTING)
    try:
        running = start_stack(
            workdir,
            database_url=url,
            bootstrap_servers=broker.bootstrap_servers,
            slack_webhook_url=None,
            smtp_url=smtp.url,
            extra_env={"KIZASHI_CONFIG_DIR": str(config_dir)},
        )
        try:
            yield running
        finally:
            code = running.stop()
            assert code == 0, f"kizashi up exited with {code}:\n{running.log()}"
    finally:
        broker.stop()
        with contextlib.suppress(Exception):
            _run(infra._drop_database(database_url, database))


def account_events(account: str, contact: str, owner: str, *, growing: bool) -> list[dict]:
    """ARR 40,000 (a mid-size account), renewal in 90 days, a month of steady use and a
    promoter's NPS: CS well above 60, so renewal_window fires. A `growing` buyer (60,000 of
    orders this year against 40,000 the year before: the playbook's "buys for high amounts,
    and growing", issue #21) is high priority, else the account is medium (its ARR)."""
    now = datetime.now(UTC)

    def at(moment: datetime) -> str:
        return moment.isoformat()

    events = [
        {
            "type": "account_update",
            "account_id": account,
            "event_id": uuid.uuid4().hex,
            "occurred_at": at(now - timedelta(days=30)),
            "name": "Acme <Widgets>",
            "plan": "Growth",
            "arr": 40000.0,
            "seats": 10,
            "renewal_date": (now + timedelta(days=90)).date().isoformat(),
            "owner_email": owner,
            "contact_email": contact,
            "contact_name": "Pat Lee",
        }
    ]
    for day in range(28):
        step = 6
        for hour in range(0, 24, step):
            events.append(
                {
                    "type": "product_usage",
                    "account_id": account,
                    "event_id": uuid.uuid4().hex,
                    "occurred_at": at(now - timedelta(days=day, hours=hour, minutes=1)),
                    "user_id": f"{account}-u{hour % 5}",
                    "action": "feature_used",
                    "feature": f"f{hour % 4}",
                }
            )
    if growing:
        for days_ago, amount in ((400, 40000.0), (100, 60000.0)):
            events.append(
                {
                    "type": "purchase",
                    "account_id": account,
                    "event_id": uuid.uuid4().hex,
                    "occurred_at": at(now - timedelta(days=days_ago)),
                    "order_id": f"{account}-o{days_ago}",
                    "amount": amount,
                    "currency": "USD",
                    "product": "platform",
                    "kind": "renewal",
                }
            )
    events.append(
        {
            "type": "survey_response",
            "account_id": account,
            "event_id": uuid.uuid4().hex,
            "occurred_at": at(now - timedelta(days=2)),
            "survey_id": "pulse",
            "nps": 10,
        }
    )
    return events


def sent_to(smtp, address: str) -> list:
    return [m for m, e in zip(smtp.messages, smtp.envelopes, strict=True) if address in e.rcpt_tos]


async def renewal_signal(stack, account: str) -> dict:
    async def probe():
        response = await stack.get("triggers", "/v1/signals", account_id=account)
        assert response.status_code == 200, response.text
        found = [s for s in response.json() if s["rule"] == "renewal_window"]
        return found[0] if found else None

    return await stack.wait_for(probe, within=60)


async def delivered(stack, signal_id: str) -> list[dict]:
    async def probe():
        response = await stack.get("notifier", "/v1/deliveries", signal_id=signal_id)
        rows = response.json()
        return rows if rows and all(r["status"] == "sent" for r in rows) else None

    return await stack.wait_for(probe, within=30)


async def test_a_medium_account_before_its_renewal_emails_its_customer_not_its_rep(
    stack, smtp
) -> None:
    account = f"renew-{uuid.uuid4().hex[:8]}"
    contact, rep = f"pat@{account}.example", f"rep@{account}.example"
    await stack.post_events(account_events(account, contact, rep, growing=False))
    signal = await renewal_signal(stack, account)
    assert signal["priority"] == "medium"
    [delivery] = await delivered(stack, signal["signal_id"])
    assert (delivery["channel"], delivery["receiver"]) == (
        "customer_email",
        "customer:renewal_window",
    )

    [message] = sent_to(smtp, contact)
    assert sent_to(smtp, rep) == []
    assert message["From"] == "renewals@vendor.test"
    assert message["Subject"].startswith("Your Acme <Widgets> renewal on ")
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Hello Pat Lee,") and "Growth subscription" in text
    assert "Acme &lt;Widgets&gt;" in message.get_body(("html",)).get_content()
    link = message["List-Unsubscribe"].strip("<>")
    assert link.startswith(f"{stack.urls['notifier']}/v1/unsubscribe/") and link in text

    async with httpx.AsyncClient(timeout=10) as browser:
        assert "Unsubscribe</button>" in (await browser.get(link)).text
        done = await browser.post(link)
        assert done.status_code == 200 and "You are unsubscribed" in done.text
    emails = (await stack.get("notifier", f"/v1/accounts/{account}/customer-emails")).json()
    assert [(e["status"], e["contact_email"]) for e in emails] == [("sent", contact)]
    assert emails[0]["unsubscribed_at"] is not None


async def test_a_high_priority_account_before_its_renewal_alerts_its_rep(stack, smtp) -> None:
    account = f"renew-{uuid.uuid4().hex[:8]}"
    contact, rep = f"pat@{account}.example", f"rep@{account}.example"
    await stack.post_events(account_events(account, contact, rep, growing=True))
    signal = await renewal_signal(stack, account)
    assert signal["priority"] == "high"
    [delivery] = await delivered(stack, signal["signal_id"])
    assert (delivery["channel"], delivery["receiver"]) == ("email", "mail")
    assert len(sent_to(smtp, rep)) == 1 and sent_to(smtp, contact) == []
