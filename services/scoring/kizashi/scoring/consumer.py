"""The scoring consumer: input events in, scores and `scores.changed` out.

Per batch, in one transaction: claim the events' (source, account, event id) keys (each
applies at most once within the dedup window, kizashi.scoring.dedup), lock the touched
accounts, apply, score, upsert, and publish `scores.changed` (kizashi.scoring.persist).
The publish is awaited before the commit, so a failed publish rolls the batch back and it is
retried whole; a crash after the publish but before the commit replays a message the triggers
dedupe by id.
"""

import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime

import orjson
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.events import EventEnvelope, input_event_adapter
from kizashi.contracts.observations import rep_observation_adapter
from kizashi.contracts.topics import REP_OBSERVATIONS
from kizashi.runtime import tracing
from kizashi.runtime.collector import collection_paused
from kizashi.runtime.consumer import PermanentRecordError, Rejected
from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.metrics import (
    EVENTS_APPLIED,
    EVENTS_DUPLICATE,
    EVENTS_EXPIRED,
    record_outcomes,
)
from kizashi.scoring.observations import structured_fields
from kizashi.scoring.persist import rescore_and_write
from kizashi.scoring.repository import EventKey
from kizashi.scoring.state import ScoringState

log = logging.getLogger(__name__)


def decode(records: list[ConsumerRecord]) -> tuple[list[EventEnvelope], Rejected]:
    events: list[EventEnvelope] = []
    rejected: Rejected = []
    for record in records:
        # Reps' observations have a topic and a contract of their own.
        adapter = (
            rep_observation_adapter if record.topic == REP_OBSERVATIONS else input_event_adapter
        )
        try:
            events.append(adapter.validate_json(record.value))
        except ValidationError as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
        except (TypeError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"undecodable: {error}")))
    return events, rejected


async def handle_events(service: ScoringState, records: list[ConsumerRecord]) -> Rejected:
    # Paused for the whole batch, awaits included: resuming inside it made the collector scan
    # every still-live event, state and outcome of the batch (8 % of the consumer's time).
    # Here it resumes once `_apply` has returned and its objects are freed. Cycles other
    # tasks make meanwhile are collected then, not lost.
    with collection_paused():
        return await _apply(service, records)


async def _apply(service: ScoringState, records: list[ConsumerRecord]) -> Rejected:
    events, rejected = decode(records)
    now = datetime.now(UTC)
    # Received before the dedup window: its id may have been pruned, so it is not applied
    # (kizashi.scoring.dedup). The same key twice in one batch (a client retry) counts once.
    received_after = now - service.dedup_window
    unique: dict[EventKey, EventEnvelope] = {}
    expired: list[EventEnvelope] = []
    for event in events:
        if event.received_at is not None and event.received_at < received_after:
            expired.append(event)
        else:
            unique[event.source or "", event.account_id, event.event_id] = event
    if expired:
        EVENTS_EXPIRED.inc(len(expired))
        log.warning(
            "skipped %d events received before the %d-day dedup window (oldest %s)",
            len(expired),
            service.dedup_window.days,
            min(e.received_at for e in expired).isoformat(),  # type: ignore[type-var]
            extra={"event_id": expired[0].event_id},
        )
    if not unique:
        return rejected
    # Tracing on only: a span per `scores.changed`, ended once the transaction has committed.
    spans = tracing.record_spans("scoring publish", records)
    async with tracing.closing(spans), raw_transaction(service.engine) as connection:
        if service.legacy_ids is None:
            service.legacy_ids = await repository.has_legacy_ids(conn=connection)
        applied_before = await repository.claim_new_events(
            conn=connection, keys=list(unique), legacy=service.legacy_ids
        )
        fresh = [e for key, e in unique.items() if key not in applied_before]
        EVENTS_DUPLICATE.inc(len(events) - len(expired) - len(fresh))
        by_account: dict[str, list[EventEnvelope]] = defaultdict(list)
        for event in fresh:
            by_account[event.account_id].append(event)
        if not by_account:
            return rejected
        stored = await repository.lock_accounts(conn=connection, account_ids=by_account)
        observed = [_observation_row(e, now) for e in fresh if e.type == "rep_observation"]  # type: ignore[attr-defined]
        await repository.insert_observations(conn=connection, rows=observed)
        outcomes = await rescore_and_write(
            service, connection, stored, by_account, cause="events", now=now, spans=spans
        )
    applied = Counter(event.type for event in fresh)  # type: ignore[attr-defined]
    for kind, count in applied.items():
        EVENTS_APPLIED.labels(kind).inc(count)
    record_outcomes(outcomes)
    return rejected


def _observation_row(event: EventEnvelope, now: datetime) -> tuple:
    """The `observations` row of a rep_observation (repository.insert_observations)."""
    return (
        event.account_id,
        event.event_id,
        event.occurred_at or event.received_at or now,
        event.received_at or now,
        event.author,  # type: ignore[attr-defined]
        event.kind,  # type: ignore[attr-defined]
        event.note,  # type: ignore[attr-defined]
        orjson.dumps(structured_fields(event)).decode(),
    )
