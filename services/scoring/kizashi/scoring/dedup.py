"""The dedup window: how long an applied event id is remembered, and what scoring does with an
event received before it.

Scoring records every applied event under (source, account, event id) in `processed_events`
(`repository.claim_new_events`), in the transaction of its effect. Rows older than the window
(`KIZASHI_DEDUP_WINDOW_DAYS`, 35 days) are pruned by a periodic task, in bounded chunks, through
the index on `applied_at`. So the promise is: a repeat of an event received within the window
is applied once.

An event whose `received_at` (stamped by ingest) is older than the window is not applied at
all: its id may have been pruned, so it could be a second application (a replay of an old log,
a consumer that lagged more than the window). It is skipped and counted in
`kizashi_scoring_events_expired_total`. A row is pruned only once it is older than the window,
and it was applied after the event was received, so every event young enough to be applied
still finds its row.
"""

import logging
from datetime import UTC, datetime

from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.metrics import PROCESSED_EVENTS_PRUNED
from kizashi.scoring.state import ScoringState

log = logging.getLogger(__name__)

PRUNE_CHUNK = 10_000
# Bounds one run (and its time); what is left goes at the next interval.
MAX_PRUNE_CHUNKS = 50


async def prune_once(service: ScoringState, now: datetime | None = None) -> int:
    """Delete processed ids applied before the window, a chunk per transaction; returns how
    many. Replicas prune side by side: each skips the rows another is deleting."""
    before = (now or datetime.now(UTC)) - service.dedup_window
    total = 0
    for _ in range(MAX_PRUNE_CHUNKS):
        async with raw_transaction(service.engine) as connection:
            deleted = await repository.prune_processed_events(
                conn=connection, applied_before=before, limit=PRUNE_CHUNK
            )
        total += deleted
        PROCESSED_EVENTS_PRUNED.inc(deleted)
        if deleted < PRUNE_CHUNK:
            break
    if service.legacy_ids is not False:
        async with raw_transaction(service.engine) as connection:
            service.legacy_ids = await repository.has_legacy_ids(conn=connection)
    if total:
        log.info("pruned %d processed event ids applied before %s", total, before.isoformat())
    return total


def window_start(service: ScoringState, now: datetime) -> datetime:
    """Events received before this are past the window (`now` less the window)."""
    return now - service.dedup_window
