"""What a clean stop of `kizashi up` waits for (architecture §6.1): the records that scoring,
triggers and the notifier have not consumed and committed yet, and the notifier's due
deliveries not yet sent.

The embedded broker keeps its log in memory, so what survives a stop is what the consumers
committed into PostgreSQL. The supervisor first closes ingest's intake, then waits (bounded)
until everything here reads zero, and only then stops the services and the servers.

Lag is read from the broker, not from the services: each group's committed offsets
(OffsetFetch), and each partition's high watermark from a fetch by a consumer of no group,
started after the offsets were read (ListOffsets "latest" is wrong on Tansu, architecture
§6.3). A group that has not joined yet, or has never committed, counts from offset 0.
"""

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.contracts.topics import CONSUMED_BY
from kizashi.notifier import repository as notifier_repository
from kizashi.runtime.consumer import group_of
from kizashi.runtime.db import create_engine, raw_transaction

# How long one reading may wait for every partition's high watermark.
FETCH_WAIT_S = 10.0
# How long ingest may take to confirm that its intake is closed before it is stopped instead.
CLOSE_WAIT_S = 10.0


async def close_intake(
    process: asyncio.subprocess.Process | None, readyz_url: str, hurry: asyncio.Event
) -> bool:
    """Close ingest's intake (SIGUSR1, kizashi.ingest.intake) and wait until its /readyz
    confirms it, with every request admitted before answered. SIGUSR1 is sent again until
    then: a process still starting ignores it (the supervisor starts services with SIGUSR1
    ignored). True when ingest confirmed, or runs no more; False when it did not confirm
    within CLOSE_WAIT_S (the caller then stops it) or `hurry` was set."""
    deadline = time.monotonic() + CLOSE_WAIT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while not hurry.is_set() and time.monotonic() < deadline:
            if process is None or process.returncode is not None:
                return True  # not running: it takes nothing
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGUSR1)
            try:
                checks = (await client.get(readyz_url)).json().get("checks", {})
            except (httpx.HTTPError, ValueError, AttributeError):
                checks = {}
            if checks.get("accepting_events") is False and checks.get("earlier_requests_answered"):
                return True
            await asyncio.sleep(0.1)
    return False


@dataclass
class Backlog:
    """Records each consuming service has not committed (in pipeline order), and the
    notifier's deliveries that are due and not sent yet."""

    lag: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0

    def empty(self) -> bool:
        return not any(self.lag.values()) and self.deliveries == 0

    def describe(self) -> str:
        """e.g. "scoring lag 1,234, triggers 12, notifier 0; 3 pending deliveries"."""
        parts = [
            f"{name} lag {count:,}" if index == 0 else f"{name} {count:,}"
            for index, (name, count) in enumerate(self.lag.items())
        ]
        plural = "delivery" if self.deliveries == 1 else "deliveries"
        return f"{', '.join(parts)}; {self.deliveries:,} pending {plural}"


class BacklogProbe:
    """Reads the Backlog from the broker and PostgreSQL; one instance for a whole drain."""

    def __init__(self, bootstrap_servers: str, database_url: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.engine: AsyncEngine = create_engine(database_url, pool_size=1)
        self.admin: AIOKafkaAdminClient | None = None

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        await self.engine.dispose()

    async def read(self) -> Backlog:
        """Upstream first: a record a service committed before its offsets were read here has
        had its output acknowledged (architecture §5.2), so a later reading downstream sees it."""
        if self.admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
            await admin.start()  # a failed start leaves None: the next reading tries anew
            self.admin = admin
        backlog = Backlog()
        for service, topics in CONSUMED_BY.items():
            backlog.lag[service] = await self._group_lag(group_of(service), topics)
        backlog.deliveries = await self._due_deliveries()
        return backlog

    async def _partitions(self, topics: tuple[str, ...]) -> list[TopicPartition]:
        metadata = await self.admin.describe_topics(list(topics))
        return [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in metadata
            if not topic.get("error_code")
            for partition in topic["partitions"]
        ]

    async def _group_lag(self, group: str, topics: tuple[str, ...]) -> int:
        partitions = await self._partitions(topics)
        if not partitions:
            return 0
        offsets = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
        committed = {tp: max(0, offsets[tp].offset) if tp in offsets else 0 for tp in partitions}
        ends = await self._high_watermarks(committed)
        return sum(max(0, ends[tp] - committed[tp]) for tp in partitions)

    async def _high_watermarks(self, positions: dict[TopicPartition, int]) -> dict:
        """Each partition's high watermark, as a fetch from `positions` reports it. A consumer
        made for this reading: every answer it gets is newer than the offsets read before."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=64 * 1024,
        )
        await consumer.start()
        try:
            consumer.assign(list(positions))
            for tp, offset in positions.items():
                consumer.seek(tp, offset)
            deadline = time.monotonic() + FETCH_WAIT_S
            while any(consumer.highwater(tp) is None for tp in positions):
                if time.monotonic() > deadline:
                    raise TimeoutError("the broker did not answer a fetch for every partition")
                await consumer.getmany(timeout_ms=100)
            return {tp: consumer.highwater(tp) for tp in positions}
        finally:
            await consumer.stop()

    async def _due_deliveries(self) -> int:
        async with raw_transaction(self.engine) as connection:
            return await notifier_repository.count_unsent_due(
                conn=connection, now=datetime.now(UTC)
            )


async def wait_until_drained(
    probe: BacklogProbe,
    *,
    limit_s: float,
    say,
    hurry: asyncio.Event,
    interval_s: float = 1.0,
    report_every_s: float = 2.0,
) -> Backlog | None:
    """Read the backlog until it is empty, the limit passes, or `hurry` is set (a second
    Ctrl-C). Shows progress every `report_every_s`. Returns the last reading (None when none
    could be made)."""
    started = time.monotonic()
    last: Backlog | None = None
    reported = -report_every_s  # the first reading is shown at once
    while True:
        try:
            last = await probe.read()
        except Exception as error:  # the broker or database away: say so, and keep trying
            say(f"draining: cannot read the backlog yet ({type(error).__name__}: {error})")
        else:
            if last.empty():
                return last
        elapsed = time.monotonic() - started
        if last is not None and elapsed - reported >= report_every_s:
            say(f"draining: {last.describe()} ({elapsed:.0f} s of at most {limit_s:.0f} s)")
            reported = elapsed
        if elapsed >= limit_s or hurry.is_set():
            return last
        try:
            await asyncio.wait_for(hurry.wait(), interval_s)
        except TimeoutError:
            pass
        else:
            return last
