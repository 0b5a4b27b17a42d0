"""Customer playbooks end to end through the notifier's own code, on a real PostgreSQL database,
the local SMTP server and the unsubscribe page served over HTTP by uvicorn (issue #20, item 5).

A signal goes through the notifier's consumer (`handle_signals`, as the broker hands it over)
and its delivery worker (`deliver_due`), which sends to the recording SMTP server. The module
has a database of its own: the shared stack's notifier polls the shared one's deliveries."""

import asyncio
import base64
import secrets
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import event

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import OpportunitySignal, Retraction
from kizashi.contracts.topics import SIGNAL_TOPICS
from kizashi.notifier import deliver, repository, unsubscribe
from kizashi.notifier.consumer import alert_rep_instead, handle_signals
from kizashi.notifier.pacing import SharedPacer
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import build_tree, load_routing_config
from kizashi.notifier.settings import NotifierSettings
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SendResult, SmtpSender, WebhookSender
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.kafka import encode
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.retry import RetryPolicy
from kizashi.tools.embedded import free_port
from tests.support import infra

SECRET = "customer-emails-test-secret-0123456789"  # noqa: S105
API_TOKEN = "customer-emails-api-token-0123456789"  # noqa: S105
FROM = "renewals@vendor.example"

ENABLED = {
    "receivers": [{"name": "mail", "type": "email", "to": "account_owner"}],
    "default": {"receivers": ["mail"]},
    "customer_emails": {
        "from": FROM,
        "frequency_cap": {"max": 1, "per": "30d"},
        "playbooks": {"renewal_window": {"enabled": True, "template": "renewal_window"}},
    },
}


@pytest.fixture(scope="module")
async def database_url(database_url: str):
    async with infra.scratch_database(database_url, "kizashi_customer") as url:
        yield url


@asynccontextmanager
async def notifier(database_url: str, smtp, routing):
    """A notifier (its state, as the service builds it) and its unsubscribe page on a port."""
    settings = NotifierSettings(database_url=database_url, api_token=API_TOKEN)
    runtime = ServiceRuntime(
        service="notifier", settings=settings, engine=create_engine(database_url)
    )
    port = free_port()
    service = NotifierState(
        runtime=runtime,
        routing=routing,
        renderer=Renderer(None),
        webhooks=WebhookSender(pacer=SharedPacer(runtime.engine)),
        smtp=SmtpSender.from_url(smtp.url, sender="kizashi@localhost"),
        retry=RetryPolicy(max_attempts=3, base=0.2, cap=1),
        action_secret=SECRET,
        public_url="http://127.0.0.1:1",
        unsubscribe_base_url=f"http://127.0.0.1:{port}",
        verifying_secrets=(SECRET,),
    )
    app = FastAPI()
    app.include_router(unsubscribe.router)
    app.state.service, app.state.settings = service, settings
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    try:
        yield service
    finally:
        server.should_exit = True
        await task
        await service.webhooks.aclose()
        await runtime.engine.dispose()


def renewal_signal(account_id: str, priority: str, contact: str | None) -> OpportunitySignal:
    return OpportunitySignal(
        signal_id=f"sig-{uuid.uuid4().hex}",
        rule="renewal_window",
        account_id=account_id,
        priority=priority,
        episode="e1",
        fired_at=datetime.now(UTC),
        reasons=["Renews in 90 days", "CS 72 (healthy: at least 60)"],
        suggested_play="Open the renewal early with a multi-year or upgraded-plan offer.",
        account=AccountFacts(
            account_id=account_id,
            name="Acme <Widgets> & Co",
            plan="Growth",
            arr=48000,
            renewal_date=date.today() + timedelta(days=90),
            owner_email=f"rep-{account_id}@reps.example",
            contact_email=contact,
            contact_name='Pat "Ops" Lee' if contact else None,
        ),
        scores=ScoreSnapshot(cs=72, op=50, segment="expand", priority=priority),
    )


def consumer_record(signal: OpportunitySignal) -> ConsumerRecord:
    """The signal as the broker hands it to the consumer."""
    raw = encode(signal)
    key = signal.account_id.encode()
    return ConsumerRecord(
        SIGNAL_TOPICS[signal.kind], 0, 0, 0, 0, key, raw, None, len(key), len(raw), ()
    )


async def route_and_send(service: NotifierState, signal: OpportunitySignal) -> None:
    """The signal through the consumer, then every due delivery through the worker."""
    assert await handle_signals(service, [consumer_record(signal)]) == []
    while await deliver.deliver_due(service):
        pass


def alert_text(message) -> str:
    return message.get_body(("plain",)).get_content()


def sent_to(smtp, address: str) -> list:
    return [m for m, e in zip(smtp.messages, smtp.envelopes, strict=True) if address in e.rcpt_tos]


async def rows(service: NotifierState, sql: str, *args: Any) -> list[dict]:
    async with raw_transaction(service.engine) as connection:
        return [dict(r) for r in await connection.fetch(sql, *args)]


def account() -> tuple[str, str, str]:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    return account_id, f"pat-{account_id}@acme.example", f"rep-{account_id}@reps.example"


async def test_medium_priority_emails_the_customer_once_and_unsubscribe_stops_it(
    database_url, smtp
):
    account_id, contact, rep = account()
    routing = build_tree(ENABLED, source="test", environ={}, smtp_configured=True)
    async with notifier(database_url, smtp, routing) as service:
        first = renewal_signal(account_id, "medium", contact)
        await route_and_send(service, first)

        [message] = sent_to(smtp, contact)
        assert sent_to(smtp, rep) == []  # the rep gets nothing
        assert message["From"] == FROM
        assert message["To"].addresses[0].display_name == 'Pat "Ops" Lee'
        assert message["Reply-To"] == rep
        assert message["Subject"] == (
            f"Your Acme <Widgets> & Co renewal on {first.account.renewal_date.isoformat()}"
        )
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert 'Hello Pat "Ops" Lee,' in text and "in 90 days" in text
        assert "Acme &lt;Widgets&gt; &amp; Co" in html and "<Widgets>" not in html
        unsubscribe_url = message["List-Unsubscribe"].strip("<>")
        assert unsubscribe_url.startswith(f"{service.unsubscribe_base_url}/v1/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert unsubscribe_url in text and unsubscribe_url in html

        [delivery] = await rows(
            service, "SELECT * FROM deliveries WHERE signal_id = $1", first.signal_id
        )
        assert (delivery["receiver"], delivery["channel"], delivery["status"]) == (
            "customer:renewal_window",
            "customer_email",
            "sent",
        )

        async with httpx.AsyncClient(timeout=10) as client:
            # GET only asks (mail scanners open links); nothing is recorded yet.
            page = await client.get(unsubscribe_url)
            assert page.status_code == 200 and "<form method='post'>" in page.text
            assert await rows(service, "SELECT * FROM customer_unsubscribes") == []
            forged = await client.post(unsubscribe_url[:-3] + "xyz")
            assert forged.status_code == 400
            # Another site's page posting the genuine link (it would need the link first).
            elsewhere = await client.post(
                unsubscribe_url, headers={"Origin": "https://evil.example"}
            )
            assert elsewhere.status_code == 403
            assert await rows(service, "SELECT * FROM customer_unsubscribes") == []
            # A mail client's one-click unsubscribe (RFC 8058) posts this body.
            done = await client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
            assert done.status_code == 200 and "You are unsubscribed" in done.text
            assert contact in done.text

        # The contact unsubscribed: the signal, still open, alerts its rep instead, saying why.
        second = renewal_signal(account_id, "medium", contact)
        await route_and_send(service, second)
        assert len(sent_to(smtp, contact)) == 1
        [alert] = sent_to(smtp, rep)
        assert "Customer email held back (the contact unsubscribed)" in alert_text(alert)
        held = await rows(
            service,
            "SELECT receiver, status, last_error FROM deliveries WHERE signal_id = $1"
            " ORDER BY receiver",
            second.signal_id,
        )
        assert [(h["receiver"], h["status"]) for h in held] == [
            ("customer:renewal_window", "skipped"),
            ("mail", "sent"),
        ]
        assert held[0]["last_error"] == (
            "the contact unsubscribed; the rep is alerted instead (mail)"
        )

        async with httpx.AsyncClient(timeout=10) as client:
            listed = await client.get(
                f"{service.unsubscribe_base_url}/v1/accounts/{account_id}/customer-emails",
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            )
            refused = await client.get(
                f"{service.unsubscribe_base_url}/v1/accounts/{account_id}/customer-emails"
            )
            nul = await client.get(
                f"{service.unsubscribe_base_url}/v1/accounts/a%00b/customer-emails",
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            )
        assert refused.status_code == 401
        assert nul.status_code == 422, nul.text
        assert listed.status_code == 200, listed.text
        emails = listed.json()
        assert [(e["signal_id"], e["status"], e["reason"]) for e in emails] == [
            (second.signal_id, "suppressed", "the contact unsubscribed"),
            (first.signal_id, "sent", None),
        ]
        assert all(e["contact_email"] == contact and e["unsubscribed_at"] for e in emails)
        assert emails[1]["template"] == "renewal_window" and emails[1]["sent_at"]


async def test_high_priority_alerts_the_rep_and_the_cap_holds_the_second_email(database_url, smtp):
    routing = build_tree(ENABLED, source="test", environ={}, smtp_configured=True)
    async with notifier(database_url, smtp, routing) as service:
        account_id, contact, rep = account()
        await route_and_send(service, renewal_signal(account_id, "high", contact))
        assert len(sent_to(smtp, rep)) == 1 and sent_to(smtp, contact) == []

        account_id, contact, rep = account()
        await route_and_send(service, renewal_signal(account_id, "low", contact))
        later = renewal_signal(account_id, "low", contact)
        await route_and_send(service, later)
        assert len(sent_to(smtp, contact)) == 1
        # Held back by the cap: the rep is told instead, once, whatever replays it.
        [alert] = sent_to(smtp, rep)
        assert "Customer email held back (frequency cap: 1 customer" in alert_text(alert)
        [customer] = await rows(
            service,
            "SELECT * FROM deliveries WHERE signal_id = $1 AND channel = 'customer_email'",
            later.signal_id,
        )
        again = await alert_rep_instead(
            service, later, SendResult("skipped", "frequency cap"), customer["traceparent"]
        )
        assert again.outcome == "skipped"
        while await deliver.deliver_due(service):
            pass
        assert len(sent_to(smtp, rep)) == 1
        assert (
            len(
                await rows(
                    service, "SELECT 1 FROM deliveries WHERE signal_id = $1", later.signal_id
                )
            )
            == 2
        )
        [held] = await rows(
            service,
            "SELECT status, reason FROM customer_emails WHERE signal_id = $1",
            later.signal_id,
        )
        assert held["status"] == "suppressed" and held["reason"].startswith("frequency cap")

        # No contact known: the rep is alerted as routed.
        account_id, _, rep = account()
        await route_and_send(service, renewal_signal(account_id, "medium", None))
        assert len(sent_to(smtp, rep)) == 1


async def test_a_retracted_signal_sends_the_customer_no_correction(database_url, smtp):
    """Corrections are for the reps who saw the internal signal; the customer got a renewal
    email, never the signal, and gets no "Correction:" (nor the template again)."""
    routing = build_tree(ENABLED, source="test", environ={}, smtp_configured=True)
    async with notifier(database_url, smtp, routing) as service:
        account_id, contact, rep = account()
        signal = renewal_signal(account_id, "medium", contact)
        await route_and_send(service, signal)
        assert len(sent_to(smtp, contact)) == 1
        why = Retraction(at=datetime.now(UTC), reason="product usage arrived late")
        retracted = signal.model_copy(update={"retracted": why})
        await route_and_send(service, retracted)
        query = "SELECT delivery_id, status, last_error FROM deliveries WHERE signal_id = $1"
        [sent] = await rows(service, query, signal.signal_id)
        assert sent["status"] == "sent"  # no correction recorded for it

        # Should one be recorded all the same, the worker sends nothing to the customer.
        forced = repository.Intent(
            delivery_id=f"{sent['delivery_id']}:correction",
            signal_id=signal.signal_id,
            receiver="customer:renewal_window",
            channel="customer_email",
            payload=retracted.model_dump(mode="json"),
        )
        async with raw_transaction(service.engine) as connection:
            await repository.record_intents(conn=connection, intents=[forced])
        while await deliver.deliver_due(service):
            pass
        by_id = {r["delivery_id"]: r for r in await rows(service, query, signal.signal_id)}
        assert (by_id[forced.delivery_id]["status"], by_id[forced.delivery_id]["last_error"]) == (
            "skipped",
            "a customer email is never corrected",
        )
        assert len(sent_to(smtp, contact)) == 1 and sent_to(smtp, rep) == []


async def test_off_by_default_nothing_goes_to_customers(database_url, smtp):
    packaged = load_routing_config(None, slack_webhook_url=None, smtp_configured=True)
    async with notifier(database_url, smtp, packaged) as service:
        account_id, contact, rep = account()
        await route_and_send(service, renewal_signal(account_id, "medium", contact))
        assert sent_to(smtp, contact) == []
        assert len(sent_to(smtp, rep)) == 1  # as before the playbooks existed
        assert (
            await rows(service, "SELECT * FROM customer_emails WHERE account_id = $1", account_id)
            == []
        )


CRM_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def test_the_webhooks_still_hear_of_a_signal_a_playbook_takes(database_url, smtp, webhook):
    # A CRM's webhook is a machine's copy, not the rep's alert: the customer email does not
    # replace it, whether the email goes or is held back (and the rep alerted instead).
    path = f"/crm/{uuid.uuid4().hex}/hook"
    webhook.verify_signatures(path, CRM_SECRET)
    crm = {"name": "crm", "type": "webhook", "url_env": "CRM_URL", "secret_env": "CRM_SECRET"}
    raw = {
        **ENABLED,
        "receivers": [*ENABLED["receivers"], crm],
        "default": {"receivers": ["mail", "crm"]},
    }
    environ = {"CRM_URL": webhook.url(path), "CRM_SECRET": CRM_SECRET}
    routing = build_tree(raw, source="test", environ=environ, smtp_configured=True)
    async with notifier(database_url, smtp, routing) as service:
        account_id, contact, rep = account()
        first = renewal_signal(account_id, "medium", contact)
        await route_and_send(service, first)
        assert len(sent_to(smtp, contact)) == 1 and sent_to(smtp, rep) == []
        [hook] = webhook.requests_to(path)
        assert hook.verified and hook["data"]["signal_id"] == first.signal_id

        capped = renewal_signal(account_id, "medium", contact)
        await route_and_send(service, capped)
        assert len(sent_to(smtp, contact)) == 1 and len(sent_to(smtp, rep)) == 1
        assert [r["data"]["signal_id"] for r in webhook.requests_to(path)] == [
            first.signal_id,
            capped.signal_id,
        ]
        delivered = await rows(
            service,
            "SELECT receiver, status FROM deliveries WHERE signal_id = $1 ORDER BY receiver",
            capped.signal_id,
        )
        assert [(d["receiver"], d["status"]) for d in delivered] == [
            ("crm", "sent"),
            ("customer:renewal_window", "skipped"),
            ("mail", "sent"),
        ]


async def test_a_batch_reads_the_missing_contacts_in_one_query(database_url, smtp):
    # Signals built before their account's contact arrived: the consumer reads the contacts
    # of the whole batch at once, not once per signal (it is the consumer's hot path).
    routing = build_tree(ENABLED, source="test", environ={}, smtp_configured=True)
    async with notifier(database_url, smtp, routing) as service:
        accounts = [account() for _ in range(3)]
        async with raw_transaction(service.engine) as connection:
            for account_id, contact, _ in accounts:
                await connection.execute(
                    "INSERT INTO accounts (account_id, facts, state) VALUES ($1, $2::jsonb, '{}')",
                    account_id,
                    orjson.dumps({"contact_email": contact, "contact_name": "Pat"}).decode(),
                )
        unknown, _, unknown_rep = account()  # scoring has not seen it: its rep, as routed
        signals = [renewal_signal(a, "medium", None) for a, _, _ in accounts]
        signals.append(renewal_signal(unknown, "medium", None))
        queries: list[str] = []
        seen: set[int] = set()

        def log_queries(dbapi_connection, *_: Any) -> None:
            driver = dbapi_connection.driver_connection
            if id(driver) not in seen:
                seen.add(id(driver))
                driver.add_query_logger(lambda logged: queries.append(logged.query))

        event.listen(service.engine.sync_engine, "checkout", log_queries)
        try:
            records = [consumer_record(s) for s in signals]
            assert await handle_signals(service, records) == []
        finally:
            event.remove(service.engine.sync_engine, "checkout", log_queries)
        assert len([q for q in queries if "FROM accounts" in q]) == 1, queries
        recorded = await rows(
            service,
            "SELECT signal_id, receiver, payload::text AS payload FROM deliveries"
            " WHERE signal_id = ANY($1)",
            [s.signal_id for s in signals],
        )
        by_signal = {r["signal_id"]: r for r in recorded}
        assert len(recorded) == 4
        for signal, (_, contact, _) in zip(signals, accounts, strict=False):
            row = by_signal[signal.signal_id]
            assert row["receiver"] == "customer:renewal_window"
            assert orjson.loads(row["payload"])["account"]["contact_email"] == contact
        assert by_signal[signals[-1].signal_id]["receiver"] == "mail"
        while await deliver.deliver_due(service):
            pass
        assert all(len(sent_to(smtp, contact)) == 1 for _, contact, _ in accounts)
        assert len(sent_to(smtp, unknown_rep)) == 1
