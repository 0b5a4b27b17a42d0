"""The delivery worker: claims due deliveries, sends each once, records the result.

Retries are rows with a later `next_attempt_at`, not sleeps in memory, so they survive a
restart. The intent (`sending`, attempt n) is committed before the send and the result after
it; a process killed in between leaves a `sending` row that is claimed again when its lease
runs out. That window (between the receiver's answer and our commit) is the only place a
message can be sent twice; the `X-Kizashi-Delivery-Id` header lets a receiver drop it.
"""

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta

from kizashi.contracts.deadletter import DeadLetter
from kizashi.contracts.signals import SignalBase, signal_adapter
from kizashi.contracts.topics import DEAD_LETTER, SIGNAL_TOPICS
from kizashi.kit.db import raw_transaction
from kizashi.kit.kafka import OutgoingRecord, encode
from kizashi.kit.signing import sign_action
from kizashi.notifier import store
from kizashi.notifier.metrics import (
    DELIVERIES,
    DELIVERIES_FAILED,
    DELIVERY_RETRIES,
    END_TO_END_LATENCY,
)
from kizashi.notifier.routing import EmailReceiver, SlackReceiver
from kizashi.notifier.service import NotifierService
from kizashi.notifier.transport import SendResult

log = logging.getLogger(__name__)
CLAIM_BATCH = 50
ACTION_LINK_TTL = timedelta(days=14)
_rng = random.Random()


def action_links(service: NotifierService, signal: SignalBase) -> tuple[str, str]:
    expires = datetime.now(UTC) + ACTION_LINK_TTL
    base = service.public_url.rstrip("/")
    return tuple(  # type: ignore[return-value]
        f"{base}/v1/actions/{sign_action(signal.signal_id, action, expires, service.action_secret)}"
        for action in ("ack", "snooze")
    )


async def send_once(
    service: NotifierService, receiver_name: str, signal: SignalBase, delivery_id: str
) -> SendResult:
    receiver = service.routing.receivers.get(receiver_name)
    if receiver is None or not receiver.enabled:
        return SendResult("failed", f"receiver {receiver_name!r} is not configured any more")
    ack_url, snooze_url = action_links(service, signal)
    if isinstance(receiver, SlackReceiver):
        url = receiver.webhook_for(signal.account)
        if not url:
            return SendResult("failed", "no webhook for this account's owner")
        payload = service.renderer.slack(signal, ack_url=ack_url, snooze_url=snooze_url)
        return await service.webhooks.send(
            url, payload, headers={"X-Kizashi-Delivery-Id": delivery_id}
        )
    if isinstance(receiver, EmailReceiver):
        if service.smtp is None:
            return SendResult("failed", "no SMTP server configured (KIZASHI_SMTP_URL)")
        recipients = receiver.recipients_for(signal.account)
        if not recipients:
            return SendResult("failed", "the account has no owner_email")
        message = service.renderer.email(signal, ack_url=ack_url, snooze_url=snooze_url)
        return await service.smtp.send(
            recipients,
            message.subject,
            message.text,
            message.html,
            headers={"X-Kizashi-Delivery-Id": delivery_id},
        )
    return SendResult("failed", f"unknown receiver type for {receiver_name!r}")


async def _deliver(service: NotifierService, claimed: dict) -> None:
    delivery_id = claimed["delivery_id"]
    signal = signal_adapter.validate_python(claimed["payload"])
    try:
        result = await send_once(service, claimed["receiver"], signal, delivery_id)
    except Exception as error:  # a bug in rendering must not leave the row `sending`
        log.exception("delivery failed unexpectedly", extra={"delivery_id": delivery_id})
        result = SendResult("failed", f"internal error: {type(error).__name__}")
    now = datetime.now(UTC)
    delay = service.retry.next_delay(claimed["attempts"], result, _rng)
    outcome = "sent" if result.ok else "retry" if delay is not None else "failed"
    async with raw_transaction(service.engine) as connection:
        await store.record_attempt(
            connection,
            delivery_id=delivery_id,
            attempt=claimed["attempts"],
            outcome=outcome,
            status_code=result.status,
            error=None if result.ok else result.reason,
            next_attempt_at=now + timedelta(seconds=delay) if delay is not None else None,
            now=now,
        )
    channel = claimed["channel"]
    DELIVERIES.labels(channel, outcome).inc()
    if outcome == "sent" and signal.caused_at is not None:
        END_TO_END_LATENCY.labels(channel).observe((now - signal.caused_at).total_seconds())
    elif outcome == "retry":
        DELIVERY_RETRIES.labels(channel).inc()
    elif outcome == "failed":
        DELIVERIES_FAILED.labels(channel).inc()
        await _dead_letter(service, signal, claimed, result, now)


async def _dead_letter(
    service: NotifierService, signal: SignalBase, claimed: dict, result: SendResult, now: datetime
) -> None:
    letter = DeadLetter(
        service="notifier",
        topic=SIGNAL_TOPICS[signal.kind],
        partition=-1,
        offset=-1,
        key=signal.account_id,
        value=encode(claimed["payload"]).decode(),
        reason=f"delivery {claimed['delivery_id']} to {claimed['receiver']} failed after "
        f"{claimed['attempts']} attempt(s): {result.reason}",
        error_type="DeliveryFailed",
        failed_at=now,
    )
    with contextlib.suppress(Exception):  # the row says `failed` whatever the broker does
        await service.producer.send_all(
            [OutgoingRecord(DEAD_LETTER, signal.account_id, encode(letter))]
        )


async def deliver_due(service: NotifierService) -> int:
    async with raw_transaction(service.engine) as connection:
        claimed = await store.claim_due(
            connection,
            now=datetime.now(UTC),
            lease_s=service.lease_s,
            in_flight=sorted(service.in_flight),
            limit=CLAIM_BATCH,
        )
    if not claimed:
        return 0
    service.in_flight.update(c["delivery_id"] for c in claimed)
    try:
        # Different receivers proceed side by side; one webhook's rate limit holds only its own.
        await asyncio.gather(*(_deliver(service, c) for c in claimed))
    finally:
        service.in_flight.difference_update(c["delivery_id"] for c in claimed)
    return len(claimed)


async def delivery_loop(service: NotifierService, poll_s: float = 1.0) -> None:
    while True:
        try:
            while await deliver_due(service):
                pass
        except Exception:
            log.exception("delivery pass failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.wake.wait(), poll_s)
        service.wake.clear()
