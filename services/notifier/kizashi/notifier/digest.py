"""Digests: a route's signals batched into one message per (receiver, owner) per interval.

The consumer records each signal's delivery with a `digest_key` naming its digest and the
window's end as `next_attempt_at`; the worker claims every delivery of a key at once (see
`repository.claim_digests`), sends one message built by `Renderer.digest`, and records the
one result on all of them, so a digest's deliveries end sent or failed together.

A row can still join a key after its digest went out (the consumer took the window from its
clock just before the window's end, and committed just after the send). It goes out in a
digest of its own, and the delivery id covers the rows a message carries, so that one has a
new id: a receiver that dedupes by id does not drop it as a repeat."""

import uuid
from collections.abc import Iterable, Sequence

from kizashi.contracts.signals import SignalBase
from kizashi.notifier.links import action_links, feedback_links, recipient_of
from kizashi.notifier.routing import EmailReceiver, SlackReceiver
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SendResult

DIGEST_NAMESPACE = uuid.UUID("0b6f7a52-3c1d-4e8a-9f27-5d4c8e1a2b90")


def digest_id_for(digest_key: str, delivery_ids: Iterable[str]) -> str:
    """The digest's `X-Kizashi-Delivery-Id`, from its key and the deliveries it carries: the
    same on every attempt of the same rows (a receiver can dedupe a resend), another one for
    a message that carries other rows of the same window (a late row is not a repeat)."""
    carried = "\x1f".join(sorted(delivery_ids))
    return str(uuid.uuid5(DIGEST_NAMESPACE, f"{digest_key}\x1e{carried}"))


def digest_title(signals: Sequence[SignalBase]) -> str:
    count = len(signals)
    account = signals[0].account
    owner = account.owner_email or account.owner_slack
    noun = f"{count} signal{'s' if count != 1 else ''}"
    return f"Kizashi digest for {owner}: {noun}" if owner else f"Kizashi digest: {noun}"


async def send_digest(
    service: NotifierState, receiver_name: str, signals: Sequence[SignalBase], digest_id: str
) -> SendResult:
    """One message for all `signals` (same receiver, same owner)."""
    receiver = service.routing.receivers.get(receiver_name)
    if receiver is None or not receiver.enabled:
        return SendResult("failed", f"receiver {receiver_name!r} is not configured any more")
    # Every signal of a digest has the same owner, so the first one's account says where to.
    account = signals[0].account
    # One owner per digest: the links act as them.
    recipient = recipient_of(account)
    links = {s.signal_id: action_links(service, s, recipient) for s in signals}
    feedback = {s.signal_id: feedback_links(service, s, recipient) for s in signals}
    rendered = service.renderer.digest(
        signals, links=links, title=digest_title(signals), feedback=feedback
    )
    headers = {"X-Kizashi-Delivery-Id": digest_id}
    if isinstance(receiver, SlackReceiver):
        url = receiver.webhook_for(account)
        if not url:
            return SendResult("failed", "no webhook for this account's owner")
        return await service.webhooks.send(url, rendered.slack, headers=headers)
    if isinstance(receiver, EmailReceiver):
        if service.smtp is None:
            return SendResult("failed", "no SMTP server configured (KIZASHI_SMTP_URL)")
        recipients = receiver.recipients_for(account)
        if not recipients:
            return SendResult("failed", "the account has no owner_email")
        email = rendered.email
        return await service.smtp.send(
            recipients, email.subject, email.text, email.html, headers=headers
        )
    return SendResult("failed", f"unknown receiver type for {receiver_name!r}")
