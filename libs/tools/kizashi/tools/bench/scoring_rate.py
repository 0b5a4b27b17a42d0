"""Scoring's own rate on a running stack's servers, for `kizashi bench e2e` (issue #17 item 3:
the pipeline must keep up with at least half of what scoring does alone, measured in the same
run).

The cheapest honest measurement: `kizashi bench scoring`'s scoring side, as it is (the
service's own handler under the service's own `BatchConsumer`, `replicas` processes in one
group, its generated stream of mixed types over 10,000 accounts), pointed at the stack's own
PostgreSQL and broker once the e2e phases are over and the pipeline is idle. Its topics,
account ids (removed afterwards) and `scores.changed` topic are the bench's own, so the stack
never sees them. The stream is a live one (the last five minutes, `--days 0`), as the e2e load
is; the clock runs from the first batch handed over to the last offset committed.

Then triggers alone on what scoring published there (kizashi.tools.bench.triggers_rate), so
that scoring's output rate and triggers' own rate compare in the same run.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from kizashi.tools.bench.scoring import (
    PARTITIONS,
    ReplicaPlan,
    _forget_accounts,
    _scored_accounts,
    generate_stream,
    produce,
    run_scoring,
    say,
)
from kizashi.tools.bench.triggers_rate import (
    TriggersRate,
    forget_triggers_rows,
    measure_triggers,
)


@dataclass(frozen=True)
class ScoringRate:
    events: int
    replicas: int
    seconds: float
    batches: int
    # Triggers alone on the `scores.changed` scoring published meanwhile (None: not measured).
    triggers: TriggersRate | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def changes_per_s(self) -> float | None:
        """Scoring's output: the `scores.changed` it published a second while it ran."""
        return None if self.triggers is None else self.triggers.changes / self.seconds


async def measure_scoring(
    url: str,
    bootstrap: str,
    *,
    events: int,
    accounts: int = 10_000,
    replicas: int = 2,
    triggers: bool = True,
) -> ScoringRate:
    from kizashi.contracts.topics import EVENT_TOPICS
    from kizashi.runtime.kafka import ensure_topics

    run = uuid.uuid4().hex[:8]
    prefix = f"bench-{run}-"
    topics = {kind: f"kizashi.bench.{run}.{kind}" for kind in EVENT_TOPICS}
    changed_topic = f"kizashi.bench.{run}.scores.changed"
    await ensure_topics(bootstrap, [*topics.values(), changed_topic], partitions=PARTITIONS)
    stream = generate_stream(events, accounts, prefix=prefix, seed=7, now=datetime.now(UTC), days=0)
    ends = await produce(bootstrap, topics.__getitem__, stream)
    in_stream = len({account for _, account, _ in stream})
    del stream
    plan = ReplicaPlan(
        url=url,
        bootstrap=bootstrap,
        topics=list(topics.values()),
        changed_topic=changed_topic,
        group=f"kizashi-bench-{run}-scoring",
    )
    try:
        seconds, batches = await run_scoring(plan, ends, replicas)
        scored = await _scored_accounts(url, prefix)
        if scored != in_stream:
            raise RuntimeError(f"{scored} of the stream's {in_stream} accounts scored")
        result = ScoringRate(events, replicas, seconds, batches)
        say(f"scoring alone: {result.events_per_s:,.0f} events/s")
        if triggers:
            say(f"triggers alone, on what scoring published: {replicas} processes …")
            rate = await measure_triggers(url, bootstrap, topic=changed_topic, replicas=replicas)
            result = ScoringRate(events, replicas, seconds, batches, rate)
            say(
                f"triggers alone: {rate.changes:,} changes, {rate.changes_per_s:,.0f}/s "
                f"(scoring published {result.changes_per_s:,.0f}/s)"
            )
    finally:
        await _forget_accounts(url, prefix)
        if triggers:
            await forget_triggers_rows(url, prefix)
    return result
