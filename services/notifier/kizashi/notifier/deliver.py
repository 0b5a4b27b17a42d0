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
from kizashi.notifier import repository
from kizashi.notifier.digest import digest_id_for, send_digest
from kizashi.notifier.links import action_links, console_link, recipient_of
from kizashi.notifier.metrics import (
    DELIVERIES,
    DELIVERIES_FAILED,
    DELIVERY_RETRIES,
    DIGEST_SIGNALS,
    DIGESTS,
    END_TO_END_LATENCY,
)
from kizashi.notifier.routing import EmailReceiver, SlackReceiver
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SendResult
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.kafka import OutgoingRecord, encode

log = logging.getLogger(__name__)
# One pass claims this many single deliveries and as many digests. Sends to one webhook are
# paced at about one a second, so a pass to a single webhook lasts up to ~2 × CLAIM_BATCH
# seconds: kept well inside the lease, so no other replica reclaims a row still queued here.
CLAIM_BATCH = 25
_rng = random.Random()


async def send_once(
    service: NotifierState, receiver_name: str, signal: SignalBase, delivery_id: str
) -> SendResult:
    receiver = service.routing.receivers.get(receiver_name)
    if receiver is None or not receiver.enabled:
        return SendResult("failed", f"receiver {receiver_name!r} is not configured any more")
    open_url = console_link(service, signal)
    if isinstance(receiver, SlackReceiver):
        url = receiver.webhook_for(signal.account)
        if not url:
            return SendResult("failed", "no webhook for this account's owner")
        ack_url, snooze_url = action_links(service, signal, recipient_of(signal.account))
        payload = service.renderer.slack(
            signal, ack_url=ack_url, snooze_url=snooze_url, open_url=open_url
        )
        return await service.webhooks.send(
            url, payload, headers={"X-Kizashi-Delivery-Id": delivery_id}
        )
    if isinstance(receiver, EmailReceiver):
        if service.smtp is None:
            return SendResult("failed", "no SMTP server configured (KIZASHI_SMTP_URL)")
        recipients = receiver.recipients_for(signal.account)
        if not recipients:
            return SendResult("failed", "the account has no owner_email")
        ack_url, snooze_url = action_links(
            service, signal, recipient_of(signal.account, recipients)
        )
        message = service.renderer.email(
            signal, ack_url=ack_url, snooze_url=snooze_url, open_url=open_url
        )
        return await service.smtp.send(
            recipients,
            message.subject,
            message.text,
            message.html,
            headers={"X-Kizashi-Delivery-Id": delivery_id},
        )
    return SendResult("failed", f"unknown receiver type for {receiver_name!r}")


async def _deliver(service: NotifierState, claimed: dict) -> None:
    delivery_id = claimed["delivery_id"]
    signal = signal_adapter.validate_python(claimed["payload"])
    try:
        result = await send_once(service, claimed["receiver"], signal, delivery_id)
    except Exception as error:  # a bug in rendering must not leave the row `sending`
        log.exception("delivery failed unexpectedly", extra={"delivery_id": delivery_id})
        result = SendResult("failed", f"internal error: {type(error).__name__}")
    await _record(service, [claimed], [signal], result)


async def _deliver_digest(service: NotifierState, claimed: list[dict]) -> None:
    signals = [signal_adapter.validate_python(c["payload"]) for c in claimed]
    digest_key = claimed[0]["digest_key"]
    digest_id = digest_id_for(digest_key, [c["delivery_id"] for c in claimed])
    try:
        result = await send_digest(service, claimed[0]["receiver"], signals, digest_id)
    except Exception as error:
        log.exception("digest failed unexpectedly", extra={"digest_key": digest_key})
        result = SendResult("failed", f"internal error: {type(error).__name__}")
    outcome = await _record(service, claimed, signals, result)
    DIGESTS.labels(claimed[0]["channel"], outcome).inc()
    if outcome == "sent":
        DIGEST_SIGNALS.labels(claimed[0]["channel"]).observe(len(signals))


async def _record(
    service: NotifierState, claimed: list[dict], signals: list[SignalBase], result: SendResult
) -> str:
    """Record one send's result on every delivery it carried (one, or a digest's), after it."""
    now = datetime.now(UTC)
    attempt = max(c["attempts"] for c in claimed)
    delay = service.retry.next_delay(attempt, result, _rng)
    outcome = "sent" if result.ok else "retry" if delay is not None else "failed"
    async with raw_transaction(service.engine) as connection:
        await repository.record_attempts(
            conn=connection,
            delivery_ids=[c["delivery_id"] for c in claimed],
            attempt=attempt,
            outcome=outcome,
            status_code=result.status,
            error=None if result.ok else result.reason,
            next_attempt_at=now + timedelta(seconds=delay) if delay is not None else None,
            now=now,
        )
    channel = claimed[0]["channel"]
    DELIVERIES.labels(channel, outcome).inc(len(claimed))
    for row in claimed:
        # `result.reason` is already redacted by the transport: no webhook URL or password.
        log.log(
            logging.INFO if outcome == "sent" else logging.WARNING,
            "delivery %s%s",
            outcome,
            "" if result.ok else f": {result.reason}",
            extra={
                "delivery_id": row["delivery_id"],
                "signal_id": row.get("signal_id"),
                "channel": channel,
                "outcome": outcome,
            },
        )
    if outcome == "retry":
        DELIVERY_RETRIES.labels(channel).inc(len(claimed))
    if outcome == "sent":
        for signal in signals:
            if signal.caused_at is not None:
                latency = (now - signal.caused_at).total_seconds()
                END_TO_END_LATENCY.labels(channel).observe(latency)
    elif outcome == "failed":
        DELIVERIES_FAILED.labels(channel).inc(len(claimed))
        await _dead_letter(service, claimed, signals, attempt, result, now)
    return outcome


async def _dead_letter(
    service: NotifierState,
    claimed: list[dict],
    signals: list[SignalBase],
    attempts: int,
    result: SendResult,
    now: datetime,
) -> None:
    """One dead letter per delivery given up on, carrying its signal and the reason."""
    records = []
    digest_id = None
    if claimed[0].get("digest_key"):
        digest_id = digest_id_for(claimed[0]["digest_key"], [c["delivery_id"] for c in claimed])
    for row, signal in zip(claimed, signals, strict=True):
        via = f" (in digest {digest_id})" if digest_id else ""
        letter = DeadLetter(
            service="notifier",
            topic=SIGNAL_TOPICS[signal.kind],
            partition=-1,
            offset=-1,
            key=signal.account_id,
            value=encode(row["payload"]).decode(),
            reason=f"delivery {row['delivery_id']} to {row['receiver']}{via} failed after "
            f"{attempts} attempt(s): {result.reason}",
            error_type="DeliveryFailed",
            failed_at=now,
        )
        records.append(OutgoingRecord(DEAD_LETTER, signal.account_id, encode(letter)))
    try:
        await service.producer.send_all(records)
    except Exception:  # the rows say `failed` (and the API lists them) whatever the broker does
        log.warning("could not dead-letter %d failed deliveries", len(records), exc_info=True)


async def deliver_due(service: NotifierState) -> int:
    """One pass: claim what is due (single deliveries and whole digests), send, record."""
    claim = {
        "now": datetime.now(UTC),
        "lease_s": service.lease_s,
        "in_flight": sorted(service.in_flight),
        "limit": CLAIM_BATCH,
    }
    async with raw_transaction(service.engine) as connection:
        single = await repository.claim_due(conn=connection, **claim)
        digests = await repository.claim_digests(conn=connection, **claim)
    claimed_ids = [c["delivery_id"] for c in single]
    claimed_ids += [c["delivery_id"] for rows in digests for c in rows]
    if not claimed_ids:
        return 0
    service.in_flight.update(claimed_ids)
    try:
        # Different receivers proceed side by side; one webhook's rate limit holds only its own.
        # Every send runs to its end even when another one's bookkeeping fails, so that no
        # row still being sent leaves `in_flight` early (it would be reclaimed and resent).
        outcomes = await asyncio.gather(
            *(_deliver(service, c) for c in single),
            *(_deliver_digest(service, rows) for rows in digests),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.error(
                    "recording a delivery failed; its lease will bring it back", exc_info=outcome
                )
    finally:
        service.in_flight.difference_update(claimed_ids)
    return len(claimed_ids)


async def delivery_loop(service: NotifierState, poll_s: float = 1.0) -> None:
    while True:
        try:
            while await deliver_due(service):
                pass
        except Exception:
            log.exception("delivery pass failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.wake.wait(), poll_s)
        service.wake.clear()
