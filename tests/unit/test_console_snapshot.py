"""When the console's background snapshots (segment moves, everyone's map) are computed again:
on a page only where computing is quick, in the background at most a set share of the time."""

from dataclasses import dataclass
from datetime import timedelta

from kizashi.console.snapshot import FRESH_S, QUICK_S, SHARE, Snapshot


@dataclass
class Counting(Snapshot):
    runs: int = 0

    async def compute(self, engine, now) -> None:
        self.runs += 1


def _older(snapshot: Snapshot, seconds: float) -> None:
    assert snapshot.computed_at is not None
    snapshot.computed_at -= timedelta(seconds=seconds)


async def test_a_page_computes_it_once_then_again_only_where_that_is_quick() -> None:
    snapshot = Counting()
    await snapshot.ready(None)
    assert snapshot.runs == 1 and snapshot.computed_at is not None
    await snapshot.ready(None)
    assert snapshot.runs == 1  # fresh

    _older(snapshot, FRESH_S + 1)  # quick to compute (a small install): a page redoes it
    await snapshot.ready(None)
    assert snapshot.runs == 2

    snapshot.took_s = QUICK_S * 2  # slow to compute (many accounts): pages never wait
    _older(snapshot, 3600)
    await snapshot.ready(None)
    assert snapshot.runs == 2


async def test_the_background_takes_at_most_its_share_of_the_time() -> None:
    snapshot = Counting()
    await snapshot.refresh(None)
    assert snapshot.runs == 1
    snapshot.took_s = 3.0
    _older(snapshot, SHARE * 3.0 - 5)
    await snapshot.refresh(None)
    assert snapshot.runs == 1  # too soon after a 3 s computation
    _older(snapshot, 10)
    await snapshot.refresh(None)
    assert snapshot.runs == 2
