"""The notifier consumer: a signal in, one recorded delivery intent per (signal, receiver).

Recording the intent is all the consumer does before committing offsets, so a signal is never
lost once consumed; the delivery worker sends what was recorded."""

import math
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.signals import signal_adapter
from kizashi.notifier import repository
from kizashi.notifier.state import NotifierState
from kizashi.runtime import tracing
from kizashi.runtime.consumer import PermanentRecordError, Rejected
from kizashi.runtime.db import raw_transaction

DELIVERY_NAMESPACE = uuid.UUID("5f1d3c3e-9b7a-4c61-8d0e-6a2b7f4e9c10")


def delivery_id_for(signal_id: str, receiver: str, reopened_at: datetime | None = None) -> str:
    """One per (signal, receiver); a signal reopened because it got worse while snoozed is
    delivered once more, per reopening (its `reopened_at`)."""
    if reopened_at is None:
        key = signal_id
    else:
        key = f"{signal_id}\x1freopened {reopened_at.astimezone(UTC).isoformat()}"
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{key}\x1f{receiver}"))


def digest_owner(account: AccountFacts) -> str:
    """Whom a digest is for: the owner's email (as mail systems compare it), else Slack handle."""
    if account.owner_email:
        return account.owner_email.casefold()
    return account.owner_slack or "-"


def digest_slot(
    receiver: str, owner: str, interval: timedelta, now: datetime
) -> tuple[str, datetime]:
    """The digest a signal joins: one per (receiver, owner) per interval, sent at its end.

    Windows are aligned to the epoch (a `1d` digest closes at 00:00 UTC), so every process and
    every replay agrees on them."""
    period = interval.total_seconds()
    end = math.floor(now.timestamp() / period + 1) * period
    return f"{receiver}|{owner}|{end:.0f}", datetime.fromtimestamp(end, UTC)


async def handle_signals(service: NotifierState, records: list[ConsumerRecord]) -> Rejected:
    rejected: Rejected = []
    intents = []
    now = datetime.now(UTC)
    # Tracing on only: a span per signal routed, ended once its deliveries are committed; the
    # rows keep its traceparent, so the worker's send joins the same trace.
    spans = tracing.record_spans("notifier route", records)
    for record in records:
        try:
            signal = signal_adapter.validate_json(record.value)
        except (ValidationError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
            continue
        parent = None
        if spans is not None:
            context = tracing.record_context(record)
            parent = tracing.traceparent(spans.start(context, signal_id=signal.signal_id))
        for match in service.routing.route(signal):
            digest_key = not_before = None
            if match.digest is not None:
                owner = digest_owner(signal.account)
                digest_key, not_before = digest_slot(match.receiver.name, owner, match.digest, now)
            intents.append(
                repository.Intent(
                    delivery_id=delivery_id_for(
                        signal.signal_id, match.receiver.name, signal.reopened_at
                    ),
                    signal_id=signal.signal_id,
                    receiver=match.receiver.name,
                    channel=match.receiver.type,
                    payload=signal.model_dump(mode="json"),
                    digest_key=digest_key,
                    not_before=not_before,
                    traceparent=parent,
                )
            )
    async with tracing.closing(spans):
        if intents:
            async with raw_transaction(service.engine) as connection:
                await repository.record_intents(conn=connection, intents=intents)
            service.wake.set()
    return rejected
