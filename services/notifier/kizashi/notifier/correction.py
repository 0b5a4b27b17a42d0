"""Corrections (issue #20): one short follow-up for a signal triggers retracted, to every
receiver its alert went to.

Triggers publishes a retracted signal again, on its own topic with `retracted` set
(kizashi.contracts.signals.Retraction). The consumer then, in one statement
(`repository.corrections`), cancels the signal's deliveries not sent yet (the owner
never reads an alert that no longer holds) and records one correction delivery per receiver
the signal was sent to, its id that of the latest delivery sent there (a reopened signal was
delivered again) with `CORRECTION_SUFFIX`: a replay, a retry or another replica finds it
recorded and adds nothing, so each receiver gets exactly one correction. Customer emails get
none (the customer never saw the internal signal). The delivery worker sends it like any
delivery (retries, pacing, the delivery log).

- **Slack:** a plain follow-up message in the same channel. Incoming webhooks answer `ok`,
  not the message's `ts`, so a thread reply (which needs the Web API's `chat.postMessage`
  with `thread_ts`) is not possible through them.
- **Email:** a reply to the alert: every alert email's Message-ID is `<delivery id@kizashi>`
  (`message_id`), so the correction carries In-Reply-To and References to it and mail
  clients thread it under the alert. A correction of an alert that went out in a digest
  replies to nothing (the digest's Message-ID is not kept), and says so in its text.
- **Webhook:** a signed `kizashi.signal.retracted` event (kizashi.notifier.webhook) with the
  signal id, the reason, the time and the `webhook-id` it corrects, so a CRM can close the
  task it opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import escape

from kizashi.contracts.rules import RULE_WORDS
from kizashi.contracts.signals import SignalBase
from kizashi.notifier.playbooks import CUSTOMER_CHANNEL
from kizashi.notifier.render import SUBJECT_MAX, slack_escape
from kizashi.notifier.repository import corrections as corrections_sql
from kizashi.notifier.routing import EmailReceiver, SlackReceiver
from kizashi.notifier.transport import SendResult
from kizashi.notifier.view import clip, one_line
from kizashi.notifier.webhook import WebhookReceiver, send_retraction
from kizashi.runtime.db import raw_transaction

if TYPE_CHECKING:
    from kizashi.notifier.state import NotifierState

CORRECTION_SUFFIX = ":correction"


def message_id(delivery_id: str) -> str:
    """The Message-ID of the email a delivery sends (a retry repeats it: one message)."""
    return f"<{delivery_id}@kizashi>"


def corrected_delivery(delivery_id: str) -> str | None:
    """The delivery a correction delivery corrects, or None for any other delivery."""
    if delivery_id.endswith(CORRECTION_SUFFIX):
        return delivery_id[: -len(CORRECTION_SUFFIX)]
    return None


@dataclass(frozen=True)
class Correction:
    """The follow-up in words: "Correction: <rule> for <account> on <day> did not hold:
    <why>", each part plain text (every channel escapes it its own way)."""

    rule: str
    account: str
    day: str
    why: str

    @classmethod
    def of(cls, signal: SignalBase) -> Correction:
        assert signal.retracted is not None
        return cls(
            rule=RULE_WORDS.get(signal.rule, signal.rule.replace("_", " ")),
            account=one_line(signal.account.display_name),
            day=f"{signal.fired_at:%Y-%m-%d}",
            why=one_line(signal.retracted.reason),
        )

    def text(self) -> str:
        return f"Correction: {self.rule} for {self.account} on {self.day} did not hold: {self.why}"

    def slack(self) -> dict:
        rule, account, why = (slack_escape(p) for p in (self.rule, self.account, self.why))
        text = f"*Correction:* {rule} for *{account}* on {self.day} did not hold: {why}"
        return {"text": clip(text, 3000)}

    def html(self) -> str:
        return (
            f"<p><strong>Correction:</strong> {escape(self.rule)} for "
            f"<strong>{escape(self.account)}</strong> on {escape(self.day)} did not hold: "
            f"{escape(self.why)}</p>\n"
        )


async def deliver_correction(
    service: NotifierState, claimed: dict, signal: SignalBase, corrected: str
) -> SendResult:
    """One attempt of a claimed correction delivery (`corrected`: the id of the alert it
    corrects). One on the customer channel is skipped: a customer never saw the internal
    signal, and none is recorded for them (`repository.corrections`) unless by mistake."""
    if claimed["channel"] == CUSTOMER_CHANNEL:
        return SendResult("skipped", "a customer email is never corrected")
    async with raw_transaction(service.engine) as connection:
        original = await corrections_sql.delivery_row(conn=connection, delivery_id=corrected)
    return await send_correction(
        service, claimed["receiver"], signal, claimed["delivery_id"], original
    )


async def send_correction(
    service: NotifierState,
    receiver_name: str,
    signal: SignalBase,
    delivery_id: str,
    original: dict | None,
) -> SendResult:
    """Send one correction; `original` is the corrected delivery's row (status, digest_key)."""
    if original is None or original["status"] in ("pending", "failed", "cancelled"):
        return SendResult("failed", "the alert it corrects was never sent")
    if original["status"] == "sending":
        return SendResult("retry", "the alert it corrects is still being sent")
    receiver = service.routing.receivers.get(receiver_name)
    if receiver is None or not receiver.enabled:
        return SendResult("failed", f"receiver {receiver_name!r} is not configured any more")
    words = Correction.of(signal)
    headers = {"X-Kizashi-Delivery-Id": delivery_id}
    if isinstance(receiver, SlackReceiver):
        url = receiver.webhook_for(signal.account)
        if not url:
            return SendResult("failed", "no webhook for this account's owner")
        return await service.webhooks.send(url, words.slack(), headers=headers)
    if isinstance(receiver, EmailReceiver):
        if service.smtp is None:
            return SendResult("failed", "no SMTP server configured (KIZASHI_SMTP_URL)")
        recipients = receiver.recipients_for(signal.account)
        if not recipients:
            return SendResult("retry", "the account has no owner_email")
        text = words.text() + "\n"
        if original.get("digest_key"):
            text += "\n(The alert went out in a digest.)\n"
        else:
            replied = message_id(original["delivery_id"])
            headers |= {"In-Reply-To": replied, "References": replied}
        subject = clip(one_line(words.text()), SUBJECT_MAX)
        return await service.smtp.send(recipients, subject, text, words.html(), headers=headers)
    if isinstance(receiver, WebhookReceiver):
        return await send_retraction(
            service.webhooks, receiver, signal, delivery_id, corrects=original["delivery_id"]
        )
    return SendResult("failed", f"unknown receiver type for {receiver_name!r}")
