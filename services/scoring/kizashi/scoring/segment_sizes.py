"""The segment-size gauge: how many accounts sit in each segment, from one GROUP BY.

It runs on the sweep's interval rather than per batch: the totals move slowly and a dashboard
needs them every few seconds at most. Segments with no account report 0, not a stale value."""

from typing import get_args

from kizashi.contracts.scores import Segment
from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.metrics import SEGMENT_ACCOUNTS
from kizashi.scoring.state import ScoringState

SEGMENTS: tuple[str, ...] = get_args(Segment)


async def refresh_segment_sizes(service: ScoringState) -> dict[str, int]:
    async with raw_transaction(service.engine) as connection:
        counted = await repository.segment_sizes(conn=connection)
    sizes = dict.fromkeys(SEGMENTS, 0) | counted
    for segment, accounts in sizes.items():
        SEGMENT_ACCOUNTS.labels(segment).set(accounts)
    return sizes
