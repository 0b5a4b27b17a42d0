"""The scoring consumer: input events in, scores and `scores.changed` out.

Per batch, in one transaction: claim the event ids (each applies at most once), lock the
touched accounts, apply, score, upsert, and publish `scores.changed` (kizashi.scoring.persist).
The publish is awaited before the commit, so a failed publish rolls the batch back and it is
retried whole; a crash after the publish but before the commit replays a message the triggers
dedupe by id.
"""

from collections import Counter, defaultdict
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.events import EventEnvelope, input_event_adapter
from kizashi.runtime.collector import collection_paused
from kizashi.runtime.consumer import PermanentRecordError, Rejected
from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.metrics import EVENTS_APPLIED, EVENTS_DUPLICATE, record_outcomes
from kizashi.scoring.persist import rescore_and_write
from kizashi.scoring.state import ScoringState


def decode(records: list[ConsumerRecord]) -> tuple[list[EventEnvelope], Rejected]:
    events: list[EventEnvelope] = []
    rejected: Rejected = []
    for record in records:
        try:
            events.append(input_event_adapter.validate_json(record.value))
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
    # The same id twice in one batch (a client retry) counts once.
    unique = list({event.event_id: event for event in events}.values())
    if not unique:
        return rejected
    now = datetime.now(UTC)
    async with raw_transaction(service.engine) as connection:
        fresh = await repository.claim_new_events(
            conn=connection,
            event_ids=[e.event_id for e in unique],
            account_ids=[e.account_id for e in unique],
        )
        EVENTS_DUPLICATE.inc(len(events) - len(fresh))
        by_account: dict[str, list[EventEnvelope]] = defaultdict(list)
        for event in unique:
            if event.event_id in fresh:
                by_account[event.account_id].append(event)
        if not by_account:
            return rejected
        stored = await repository.lock_accounts(conn=connection, account_ids=by_account)
        outcomes = await rescore_and_write(
            service, connection, stored, by_account, cause="events", now=now
        )
    applied = Counter(event.type for event in unique if event.event_id in fresh)  # type: ignore[attr-defined]
    for kind, count in applied.items():
        EVENTS_APPLIED.labels(kind).inc(count)
    record_outcomes(outcomes)
    return rejected
