"""Re-score locked accounts, save them and publish `scores.changed`, inside the caller's
transaction: the step the consumer, the sweep and `kizashi rescore` share.

The work goes in chunks so that PostgreSQL and the broker work alongside Python: while the
database upserts one chunk (one statement) and the broker takes its messages, the next chunk
is scored. Chunks go in account-id order, the order the rows were locked in.
"""

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from kizashi.contracts.events import EventEnvelope
from kizashi.contracts.topics import SCORES_CHANGED
from kizashi.runtime import tracing
from kizashi.runtime.collector import collection_paused
from kizashi.runtime.kafka import OutgoingRecord
from kizashi.scoring import repository
from kizashi.scoring.pipeline import Outcome, rescore
from kizashi.scoring.repository import StoredAccount
from kizashi.scoring.state import ScoringState

CHUNK = 1000


async def rescore_and_write(
    service: ScoringState,
    connection: asyncpg.Connection,
    stored: Mapping[str, StoredAccount],
    events: Mapping[str, Sequence[EventEnvelope]],
    *,
    cause: str,
    now: datetime,
    spans: tracing.RecordSpans | None = None,
) -> list[Outcome]:
    """Re-score every account of `stored` with its new `events` (none for a time-only re-score);
    returns the outcomes once everything is saved and acknowledged by the broker. With
    `spans` (tracing on), each `scores.changed` goes on under a span of its own that is the
    child of the context its account's events came with (kizashi.runtime.tracing)."""
    ids = sorted(stored)
    outcomes: list[Outcome] = []
    saving: asyncio.Task | None = None
    sending: list[asyncio.Task] = []
    try:
        for start in range(0, len(ids), CHUNK):
            # CPU work only. The consumer pauses the collector for its whole batch already;
            # the sweep and `kizashi rescore` let it run at the awaits.
            with collection_paused():
                config, since = service.config, service.history_since(now)
                chunk = [
                    rescore(
                        stored[i],
                        events.get(i, ()),
                        config=config,
                        now=now,
                        cause=cause,
                        history_since=since,
                        phases=service.phases,
                    )
                    for i in ids[start : start + CHUNK]
                ]
            if saving is not None:
                await saving  # one statement at a time on a connection
            scored = [o.scored for o in chunk]
            saving = asyncio.create_task(repository.save(conn=connection, scored=scored))
            messages = [
                OutgoingRecord(
                    SCORES_CHANGED,
                    o.scored.account_id,
                    o.encoded(),
                    context=None
                    if spans is None
                    else spans.for_key(o.scored.account_id, account_id=o.scored.account_id),
                )
                for o in chunk
                if o.message is not None
            ]
            if messages:
                sending.append(asyncio.create_task(service.producer.send_all(messages)))
            outcomes.extend(chunk)
            await asyncio.sleep(0)  # let both tasks send their requests before scoring on
        if saving is not None:
            await saving
        await asyncio.gather(*sending)
    finally:
        # On failure: stop what is still running, and collect every task's outcome.
        tasks = [task for task in (saving, *sending) if task is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return outcomes
