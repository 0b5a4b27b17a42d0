"""The delivery worker: claims due deliveries, sends each once, records the result.

Retries are rows with a later `next_attempt_at`, not sleeps in memory, so they survive a
restart. The intent (`sending`, attempt n) is committed before the send and the result after
it; a process killed in between leaves a `sending` row that is claimed again when its lease
runs out. That window (between the receiver's answer and our commit, in a process that dies
there) is the only place a message can be sent twice; the `X-Kizashi-Delivery-Id` header
lets a receiver drop it.

A live process never lets that happen to itself or to another replica: it renews the lease of
every delivery it holds while it waits (in the Slack pacing, in a slow send), and a result it
could not record (PostgreSQL away) stays in memory, its row still held, and is recorded before
this process claims anything else (architecture §5.7).
"""

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.deadletter import DeadLetter
from kizashi.contracts.signals import SignalBase, signal_adapter
from kizashi.contracts.topics import DEAD_LETTER, SIGNAL_TOPICS
from kizashi.notifier import repository
from kizashi.notifier.consumer import alert_rep_instead
from kizashi.notifier.correction import corrected_delivery, deliver_correction, message_id
from kizashi.notifier.customer import CUSTOMER_CHANNEL, send_customer_email
from kizashi.notifier.digest import digest_id_for, send_digest
from kizashi.notifier.links import (
    action_links,
    all_links,
    console_link,
    feedback_links,
    recipient_of,
)
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
from kizashi.notifier.webhook import WebhookReceiver, send_webhook
from kizashi.runtime import tracing
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
        recipient = recipient_of(signal.account)
        ack_url, snooze_url = action_links(service, signal, recipient)
        payload = service.renderer.slack(
            signal,
            ack_url=ack_url,
            snooze_url=snooze_url,
            open_url=open_url,
            feedback_urls=feedback_links(service, signal, recipient),
        )
        return await service.webhooks.send(
            url, payload, headers={"X-Kizashi-Delivery-Id": delivery_id}
        )
    if isinstance(receiver, EmailReceiver):
        if service.smtp is None:
            return SendResult("failed", "no SMTP server configured (KIZASHI_SMTP_URL)")
        recipients = receiver.recipients_for(signal.account)
        if not recipients:
            # Retried (a bounded number of times): the facts may still be on their way.
            return SendResult("retry", "the account has no owner_email")
        recipient = recipient_of(signal.account, recipients)
        ack_url, snooze_url = action_links(service, signal, recipient)
        message = service.renderer.email(
            signal,
            ack_url=ack_url,
            snooze_url=snooze_url,
            open_url=open_url,
            feedback_urls=feedback_links(service, signal, recipient),
        )
        return await service.smtp.send(
            recipients,
            message.subject,
            message.text,
            message.html,
            # Its own Message-ID, so a correction can reply to it (kizashi.notifier.correction).
            headers={"X-Kizashi-Delivery-Id": delivery_id, "Message-ID": message_id(delivery_id)},
        )
    if isinstance(receiver, WebhookReceiver):
        links = all_links(service, signal, recipient_of(signal.account))
        return await send_webhook(service.webhooks, receiver, signal, delivery_id, links)
    return SendResult("failed", f"unknown receiver type for {receiver_name!r}")


async def with_current_owner(service: NotifierState, signal: SignalBase) -> SignalBase:
    """The signal, its account's name and owners filled in from scoring's current facts when
    its snapshot lacks one (the facts may have arrived after the signal was built:
    account_update and the other events travel on different topics, architecture §5.4). One
    read by primary key, only for such signals; scoring's table is never written here."""
    account = signal.account
    if account.owner_email and account.owner_slack:
        return signal
    async with raw_transaction(service.engine) as connection:
        current = await repository.current_owner(conn=connection, account_id=signal.account_id)
    updated = filled_in(account, current or {})
    return signal if updated is account else signal.model_copy(update={"account": updated})


def filled_in(account: AccountFacts, current: dict) -> AccountFacts:
    """`account` with what it lacks of `current` (scoring's facts now). The Slack handle only
    when the owner is the same person: a signal sent to someone else (a recycled account
    reassigned to another rep) must not mention the CRM owner."""
    mine, theirs = account.owner_email, current.get("owner_email")
    same_owner = mine is None or theirs is None or mine.lower() == theirs.lower()
    missing = {
        k: v
        for k, v in current.items()
        if v and getattr(account, k) is None and (k != "owner_slack" or same_owner)
    }
    return AccountFacts.model_validate({**account.model_dump(), **missing}) if missing else account


async def _current(service: NotifierState, signal: SignalBase) -> SignalBase | SendResult:
    try:
        return await with_current_owner(service, signal)
    except Exception as error:  # PostgreSQL away: try the delivery again later
        return SendResult("retry", f"could not read the account's owner: {type(error).__name__}")


def _send_span(rows: list[dict], claimed_ns: int, delivery_id: str) -> Any:
    """The send's span (tracing on only): from the claim to the receiver's answer, in the trace
    of the rows' traceparent (a digest's other rows are links)."""
    return tracing.send_span(
        "notifier send",
        [r.get("traceparent") for r in rows],
        claimed_ns,
        delivery_id=delivery_id,
        channel=rows[0]["channel"],
    )


async def _deliver(service: NotifierState, claimed: dict, claimed_ns: int = 0) -> None:
    delivery_id = claimed["delivery_id"]
    signal = signal_adapter.validate_python(claimed["payload"])
    span = _send_span([claimed], claimed_ns, delivery_id)
    try:
        current = await _current(service, signal)
        if isinstance(current, SendResult):
            result = current
        elif (corrected := corrected_delivery(delivery_id)) is not None:
            # A correction (issue #20). Before the customer's channel: a correction row there
            # must never send the customer its template again.
            result = await deliver_correction(service, claimed, current, corrected)
        elif claimed["channel"] == CUSTOMER_CHANNEL:
            result = await send_customer_email(service, claimed, current, delivery_id)
            if result.outcome == "skipped":  # held back: the rep hears of the signal instead
                result = await alert_rep_instead(
                    service, current, result, claimed.get("traceparent")
                )
        else:
            result = await send_once(service, claimed["receiver"], current, delivery_id)
    except Exception as error:  # a bug in rendering must not leave the row `sending`
        log.exception("delivery failed unexpectedly", extra={"delivery_id": delivery_id})
        result = SendResult("failed", f"internal error: {type(error).__name__}")
    tracing.end_span(span, None if result.ok else result.reason, outcome=result.outcome)
    await _record(service, [claimed], [signal], result)


async def _deliver_digest(service: NotifierState, claimed: list[dict], claimed_ns: int = 0) -> None:
    signals = [signal_adapter.validate_python(c["payload"]) for c in claimed]
    digest_key = claimed[0]["digest_key"]
    digest_id = digest_id_for(digest_key, [c["delivery_id"] for c in claimed])
    span = _send_span(claimed, claimed_ns, digest_id)
    try:
        current = [await _current(service, s) for s in signals]
        retry = next((c for c in current if isinstance(c, SendResult)), None)
        if retry is not None:
            result = retry
        else:
            result = await send_digest(service, claimed[0]["receiver"], current, digest_id)
    except Exception as error:
        log.exception("digest failed unexpectedly", extra={"digest_key": digest_key})
        result = SendResult("failed", f"internal error: {type(error).__name__}")
    tracing.end_span(span, None if result.ok else result.reason, outcome=result.outcome)
    await _record(service, claimed, signals, result)


@dataclass
class Result:
    """One send's result, to be recorded on every delivery it carried (one, or a digest's)."""

    claimed: list[dict]
    signals: list[SignalBase]
    result: SendResult
    outcome: str  # sent, retry, failed or skipped
    attempt: int
    next_attempt_at: datetime | None
    at: datetime

    @property
    def delivery_ids(self) -> list[str]:
        return [c["delivery_id"] for c in self.claimed]


async def _record(
    service: NotifierState, claimed: list[dict], signals: list[SignalBase], result: SendResult
) -> None:
    """Record one send's result, after it. When PostgreSQL cannot take it now, the result
    waits in memory (its rows stay in `in_flight`, leased to this process) and is recorded
    before this process claims anything else: a message sent is never sent again for want
    of its bookkeeping."""
    now = datetime.now(UTC)
    attempt = max(c["attempts"] for c in claimed)
    delay = service.retry.next_delay(attempt, result, _rng)
    outcome = (
        "sent"
        if result.ok
        else "skipped"
        if result.outcome == "skipped"
        else "retry"
        if delay is not None
        else "failed"
    )
    entry = Result(
        claimed,
        signals,
        result,
        outcome,
        attempt,
        now + timedelta(seconds=delay) if delay is not None else None,
        now,
    )
    try:
        await _write(service, entry)
    except Exception:
        service.unrecorded.append(entry)
        log.warning(
            "could not record a delivery's result (%s); kept until the database answers",
            outcome,
            exc_info=True,
            extra={"delivery_id": entry.delivery_ids[0], "outcome": outcome},
        )
        return
    await _recorded(service, entry)


async def _write(service: NotifierState, entry: Result) -> None:
    async with raw_transaction(service.engine) as connection:
        await repository.record_attempts(
            conn=connection,
            delivery_ids=entry.delivery_ids,
            attempt=entry.attempt,
            outcome=entry.outcome,
            status_code=entry.result.status,
            error=None if entry.result.ok else entry.result.reason,
            next_attempt_at=entry.next_attempt_at,
            now=entry.at,
        )


async def record_unrecorded(service: NotifierState) -> None:
    """Record the results kept in memory, oldest first; raises while the database is away
    (so that the pass claims nothing meanwhile)."""
    while service.unrecorded:
        entry = service.unrecorded[0]
        await _write(service, entry)
        service.unrecorded.pop(0)
        service.in_flight.difference_update(entry.delivery_ids)
        log.info("recorded a delivery's result late", extra={"delivery_id": entry.delivery_ids[0]})
        await _recorded(service, entry)


async def _recorded(service: NotifierState, entry: Result) -> None:
    """Metrics, logs and dead letters for a result now recorded."""
    claimed, signals, result, outcome = entry.claimed, entry.signals, entry.result, entry.outcome
    now = entry.at
    channel = claimed[0]["channel"]
    DELIVERIES.labels(channel, outcome).inc(len(claimed))
    if claimed[0].get("digest_key"):
        DIGESTS.labels(channel, outcome).inc()
        if outcome == "sent":
            DIGEST_SIGNALS.labels(channel).observe(len(signals))
    for row in claimed:
        # `result.reason` is already redacted by the transport: no webhook URL or password.
        log.log(
            logging.INFO if outcome in ("sent", "skipped") else logging.WARNING,
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
            # A correction's latency is not the signal's (it comes days later, by design).
            if signal.caused_at is not None and signal.retracted is None:
                latency = (now - signal.caused_at).total_seconds()
                END_TO_END_LATENCY.labels(channel).observe(latency)
    elif outcome == "failed":
        DELIVERIES_FAILED.labels(channel).inc(len(claimed))
        await _dead_letter(service, claimed, signals, entry.attempt, result, now)


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
    """One pass: claim what is due (single deliveries and whole digests), send, record.
    Results still waiting to be recorded go first; while they cannot, nothing is claimed."""
    await record_unrecorded(service)
    claim = {
        "now": datetime.now(UTC),
        "lease_s": service.lease_s,
        "in_flight": sorted(service.in_flight),
        "limit": CLAIM_BATCH,
    }
    async with raw_transaction(service.engine) as connection:
        single = await repository.claim_due(conn=connection, **claim)
        digests = await repository.claim_digests(conn=connection, **claim)
    claimed_ns = time.time_ns()  # where a send's span starts
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
            *(_deliver(service, c, claimed_ns) for c in single),
            *(_deliver_digest(service, rows, claimed_ns) for rows in digests),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.error(
                    "recording a delivery failed; its lease will bring it back", exc_info=outcome
                )
    finally:
        # What was sent but not recorded stays held by this process (see _record).
        held = {i for entry in service.unrecorded for i in entry.delivery_ids}
        service.in_flight.difference_update(set(claimed_ids) - held)
    return len(claimed_ids)


async def keep_leases(service: NotifierState) -> None:
    """Renew, every third of a lease, the lease of every delivery this process holds, so that
    none runs out while this process lives (waiting for a webhook's pacing slot can take
    longer than a lease). A process that dies stops renewing, and its rows come back."""
    every = max(service.lease_s / 3, 0.05)
    while True:
        await asyncio.sleep(every)
        held = sorted(service.in_flight)
        if not held:
            continue
        try:
            async with raw_transaction(service.engine) as connection:
                await repository.renew_leases(
                    conn=connection, delivery_ids=held, now=datetime.now(UTC)
                )
        except Exception:
            log.warning("could not renew %d delivery leases", len(held), exc_info=True)


async def delivery_loop(service: NotifierState, poll_s: float = 1.0) -> None:
    keeper = asyncio.create_task(keep_leases(service), name="delivery-leases")
    try:
        while True:
            failed = False
            try:
                while await deliver_due(service):
                    pass
            except Exception:
                failed = True
                log.exception("delivery pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                # Sooner when a send's result could not be recorded just now (nothing else is
                # claimed until it is); at the usual pace while the database keeps refusing.
                soon = service.unrecorded and not failed
                await asyncio.wait_for(service.wake.wait(), min(poll_s, 0.25) if soon else poll_s)
            service.wake.clear()
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
