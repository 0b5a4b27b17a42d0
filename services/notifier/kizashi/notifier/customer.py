"""Customer playbooks' emails: choosing the customer over the rep when a signal is routed, and
sending one email to the customer's contact from the delivery worker.

The consumer asks `customer_intent`: when an enabled playbook takes the signal (its rule, the
account's priority) and the account has a contact, the signal's delivery to people is an
email to that contact (receiver `customer:<rule>`, channel `customer_email`) and the rep hears
nothing of it; its webhook receivers still get it. An account without a contact is alerted to
its rep as routed. The contacts missing from a batch's snapshots are read in one query
(`current_contacts`).

The worker calls `send_customer_email`. Before the send, in one transaction holding the
customer's lock, it checks the unsubscribe list and the frequency cap and records the email
(`sending`), or records it `suppressed` with the reason and sends nothing (the delivery ends
`skipped`, and the worker alerts the rep instead: consumer.alert_rep_instead). After the
send it records `sent`, `pending` (a retry follows) or `failed`.
The playbooks' configuration and the pure decisions are kizashi.notifier.playbooks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import formataddr

from kizashi.contracts.signals import SignalBase
from kizashi.notifier.links import unsubscribe_link
from kizashi.notifier.playbooks import (
    CUSTOMER_CHANNEL,
    PlaybookConfig,
    customer_playbook,
    playbook_name,
    receiver_name,
    within_cap,
)
from kizashi.notifier.repository import customer as customer_sql
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SendResult
from kizashi.notifier.view import one_line
from kizashi.runtime.db import raw_transaction

log = logging.getLogger(__name__)

__all__ = [
    "CUSTOMER_CHANNEL",
    "current_contacts",
    "customer_intent",
    "send_customer_email",
]


def wants_current_contact(service: NotifierState, signal: SignalBase) -> bool:
    """Whether a playbook would take this signal but its snapshot names no contact: the
    account's current facts are then read (they may have arrived after the signal was built:
    architecture §5.4), for a whole batch at once (`current_contacts`)."""
    return (
        service.smtp is not None
        and service.routing.customer.playbook_for(signal) is not None
        and not signal.account.contact_email
    )


async def current_contacts(
    service: NotifierState, signals: Iterable[SignalBase]
) -> dict[str, dict]:
    """The current contact of every account of this batch that `wants_current_contact`, by
    account id: one statement for the batch, none when no signal wants one."""
    wanted = sorted({s.account_id for s in signals if wants_current_contact(service, s)})
    if not wanted:
        return {}
    async with raw_transaction(service.engine) as connection:
        return await customer_sql.current_contacts(conn=connection, account_ids=wanted)


def customer_intent(
    service: NotifierState, signal: SignalBase, contacts: Mapping[str, dict]
) -> tuple[str, SignalBase] | None:
    """(receiver, the signal carrying the contact it goes to) when a customer playbook takes
    this signal instead of the rep's alert; None to route it as usual. The contact comes from
    the signal's snapshot, else from `contacts` (`current_contacts` of the batch)."""
    config = service.routing.customer
    # Without SMTP no customer email can go: the rep is alerted as routed instead.
    if service.smtp is None or config.playbook_for(signal) is None:
        return None
    contact = signal.account.contact_email
    if not contact:
        current = contacts.get(signal.account_id)
        if current and current.get("contact_email"):
            contact = current["contact_email"]
            account = signal.account.model_copy(
                update={k: v for k, v in current.items() if v is not None}
            )
            signal = signal.model_copy(update={"account": account})
    if customer_playbook(config, signal, contact) is None:
        return None
    return receiver_name(signal.rule), signal


def _context(signal: SignalBase, unsubscribe_url: str, sender: str) -> dict:
    """The template variables (docs/notifications.md lists them). Every value is the
    customer's or the CRM's text: the HTML template escapes it, headers take it on one line."""
    account = signal.account
    today = datetime.now(UTC).date()
    renewal = account.renewal_date
    return {
        "contact_name": one_line(account.contact_name or ""),
        "contact_email": account.contact_email,
        "account_name": one_line(account.display_name),
        "plan": one_line(account.plan or ""),
        "renewal_date": renewal.isoformat() if renewal else "",
        "days_to_renewal": (renewal - today).days if renewal else None,
        "rep_email": account.owner_email or "",
        "rule": signal.rule,
        "unsubscribe_url": unsubscribe_url,
        "sender": sender,
    }


async def send_customer_email(
    service: NotifierState, claimed: dict, signal: SignalBase, delivery_id: str
) -> SendResult:
    rule = playbook_name(claimed["receiver"]) or signal.rule
    playbook = service.routing.customer.playbooks.get(rule)
    contact = (signal.account.contact_email or "").strip().lower()
    record = {
        "delivery_id": delivery_id,
        "signal_id": signal.signal_id,
        "account_id": signal.account_id,
        "contact_email": contact or "-",
        "playbook": rule,
        "template": playbook.template if playbook else "-",
    }
    if playbook is None or not playbook.enabled or not contact:
        reason = "no contact_email" if contact == "" else f"the {rule} playbook is off now"
        try:
            await _record(service, record, "suppressed", reason)
        except Exception as error:  # PostgreSQL away: record it on a later attempt
            why = f"could not record a held-back email: {type(error).__name__}"
            return SendResult("retry", why)
        return SendResult("skipped", reason)
    if service.smtp is None:
        return SendResult("failed", "no SMTP server configured (KIZASHI_SMTP_URL)")
    try:
        held = await _hold(service, record)
    except Exception as error:  # PostgreSQL away: nothing was sent, try again later
        return SendResult("retry", f"could not check the customer's list: {type(error).__name__}")
    if held is not None:
        return SendResult("skipped", held)
    result = await _send(service, playbook, signal, contact, delivery_id)
    delay = service.retry.next_delay(claimed["attempts"], result)
    status = "sent" if result.ok else "pending" if delay is not None else "failed"
    try:
        await _record(service, record, status, None if result.ok else result.reason)
    except Exception:  # the row stays `sending`: it counts against the cap (never one too many)
        log.warning("could not record a customer email's result", exc_info=True)
    return result


async def _hold(service: NotifierState, record: dict) -> str | None:
    """Record the email `sending`, or `suppressed` with the reason returned."""
    cap = service.routing.customer.frequency_cap
    now = datetime.now(UTC)
    async with raw_transaction(service.engine) as connection:
        unsubscribed, earlier = await customer_sql.reserve_customer_email(
            conn=connection,
            delivery_id=record["delivery_id"],
            account_id=record["account_id"],
            contact_email=record["contact_email"],
            since=now - cap.period,
        )
        reason = None
        if unsubscribed:
            reason = "the contact unsubscribed"
        else:
            check = within_cap(cap, earlier, now)
            if not check.allowed:
                reason = f"frequency cap: {check.sent} customer email(s) in the last {cap.per}"
        await customer_sql.record_customer_email(
            conn=connection,
            **record,
            status="suppressed" if reason else "sending",
            reason=reason,
            now=now,
        )
    return reason


async def _record(service: NotifierState, record: dict, status: str, reason: str | None) -> None:
    async with raw_transaction(service.engine) as connection:
        await customer_sql.record_customer_email(
            conn=connection, **record, status=status, reason=reason, now=datetime.now(UTC)
        )


async def _send(
    service: NotifierState,
    playbook: PlaybookConfig,
    signal: SignalBase,
    contact: str,
    delivery_id: str,
) -> SendResult:
    assert service.smtp is not None
    sender = playbook.from_ or service.routing.customer.from_ or service.email_from
    url = unsubscribe_link(service, delivery_id, contact)
    message = service.renderer.customer(playbook.template, _context(signal, url, sender))
    name = one_line(signal.account.contact_name or "")
    headers = {
        "From": sender,
        # formataddr quotes (or RFC 2047-encodes) the name: a comma or quote in it stays text.
        "To": formataddr((name, contact)) if name else contact,
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Kizashi-Delivery-Id": delivery_id,
    }
    reply_to = playbook.reply_to or signal.account.owner_email
    if reply_to:
        headers["Reply-To"] = reply_to
    return await service.smtp.send(
        [contact], message.subject, message.text, message.html, headers=headers, sender=sender
    )
