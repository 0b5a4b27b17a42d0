"""Late events within their source's watermark, as spans for `scores.changed` (issue #20).

An event is *late* when it was received more than `LATE_AFTER` after it occurred, and *within
the watermark* when it was received at most its source's `watermarks` hours (scoring.yaml)
after it occurred. The batch's late events within the watermark are summed up per (type,
source) as spans of occurrence times, a new span starting after a gap of more than
`MERGE_GAP`: a span then holds an event within `MERGE_GAP` of every instant it covers, so
triggers can tell exactly whether late events fell inside a window longer than that (the
14 days an "inactivity" counted) from the span alone. Events later than the watermark are
applied to the scores like any other, and are left out here: they never retract a signal.

Pure: no I/O. Costs one comparison per event of the batch, and a sort only for late ones.
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from kizashi.contracts.events import EventEnvelope
from kizashi.scoring.config import Watermarks

# Received more than this after it occurred, an event counts as late. Under it, an event is
# on time: clients buffer and batch for minutes (Segment's libraries, mobile apps), and a
# time-driven rule's condition spans days. Also keeps a live stream's batches as they were:
# only late ones are published for being late.
LATE_AFTER = timedelta(minutes=10)
# Two late events further apart than this start separate spans.
MERGE_GAP = timedelta(hours=1)
# At most this many spans per change (the newest kept): the message stays small.
MAX_SPANS = 16


def late_spans(events: Sequence[EventEnvelope], watermarks: Watermarks) -> list[dict]:
    """The spans (kizashi.contracts.scores.LateEvents, as JSON data) of the late events
    within their source's watermark, oldest first; [] when there are none."""
    groups: dict[tuple[str, str | None], list] = defaultdict(list)
    for event in events:
        occurred, received = event.occurred_at, event.received_at
        if occurred is None or received is None:
            continue
        lateness = received - occurred
        if lateness <= LATE_AFTER:
            continue
        if lateness > timedelta(hours=watermarks.hours_for(event.source)):
            continue  # later than the watermark: it counts in the scores, and retracts nothing
        quantity = getattr(event, "quantity", None)
        groups[(event.type, event.source)].append((occurred, quantity))  # type: ignore[attr-defined]
    spans: list[dict] = []
    for (kind, source), times in groups.items():
        times.sort(key=lambda item: item[0])
        first = last = times[0][0]
        count, total = 0, 0.0
        for moment, quantity in times:
            if moment - last > MERGE_GAP:
                spans.append(_span(kind, source, first, last, count, total))
                first, count, total = moment, 0, 0.0
            last, count, total = moment, count + 1, total + (quantity or 0.0)
        spans.append(_span(kind, source, first, last, count, total))
    spans.sort(key=lambda s: s["last_at"])
    return spans[-MAX_SPANS:]


def _span(kind: str, source: str | None, first, last, count: int, quantity: float) -> dict:
    span = {"type": kind, "source": source, "first_at": first, "last_at": last, "count": count}
    if kind == "product_usage":
        span["quantity"] = quantity
    return span
