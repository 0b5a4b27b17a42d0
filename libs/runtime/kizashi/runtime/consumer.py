"""The batch consumer loop (architecture §5.2, §5.5, §6.3): records are handled a batch at a
time, offsets are committed explicitly per partition only after the handler's database transaction
committed, records that cannot be processed go to the dead-letter topic, and transient
failures (the database or broker away) retry the same batch instead of skipping it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
)
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.deadletter import DeadLetter
from kizashi.contracts.topics import DEAD_LETTER
from kizashi.runtime import tracing
from kizashi.runtime.db import is_transient
from kizashi.runtime.kafka import BrokerUnavailable, OutgoingRecord, Producer, encode
from kizashi.runtime.metrics import (
    BATCH_DURATION,
    CONSUMED_BATCHES,
    CONSUMED_RECORDS,
    CONSUMER_LAG,
    CONSUMER_LAST_PROGRESS,
    CONSUMER_RETRIES,
    DEAD_LETTERS,
)

log = logging.getLogger(__name__)
# How long a batch may wait to be topped up from a backlog (see BatchConsumer._fill).
FILL_WINDOW_S = 1.0


def group_of(service: str) -> str:
    """The consumer group a service's consumers share (architecture §1)."""
    return f"kizashi-{service}"


class PermanentRecordError(Exception):
    """This record can never be processed (bad bytes, schema violation): dead-letter it."""


# The handler takes one batch, commits its database transaction, and returns the records it
# refused as unprocessable (with the error), which are dead-lettered before offsets commit.
Rejected = list[tuple[ConsumerRecord, BaseException]]
BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[Rejected]]


@dataclass
class ConsumerStatus:
    started: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    lag: dict[TopicPartition, int] = field(default_factory=dict)
    # Wall-clock time the first records were handed over (before any top-up): benchmarks.
    first_records_at: float | None = None

    def total_lag(self) -> int:
        return sum(self.lag.values())

    def stuck(self, after_s: float) -> bool:
        """No progress for a while although records are waiting (aiokafka #1154)."""
        return self.total_lag() > 0 and time.monotonic() - self.last_progress > after_s


class _CommitOnRevoke(ConsumerRebalanceListener):
    """Batches are handled and committed inside the poll loop. A rejoin runs in the
    background, though (a broker that restarted forgets the group), so this clears what is
    kept about partitions no longer ours and counts the rebalance: a batch that straddled one
    does not commit."""

    def __init__(self, loop: "BatchConsumer") -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.loop.status.lag.pop(tp, None)
            self.loop._committed.pop(tp, None)
            # The new owner reports this partition's lag; a stale series here would add to it.
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.loop.service, tp.topic, str(tp.partition))
        self.loop._rebalances += 1

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))


class BatchConsumer:
    def __init__(
        self,
        *,
        service: str,
        topics: Sequence[str],
        bootstrap_servers: str,
        handler: BatchHandler,
        dead_letters: Producer,
        group_id: str | None = None,
        max_batch: int = 2000,
        fetch_max_wait_ms: int = 20,
        fill_window_s: float = FILL_WINDOW_S,
        broker_may_forget: bool = True,
    ) -> None:
        self.service = service
        self.topics = list(topics)
        self.handler = handler
        self.dead_letters = dead_letters
        self.max_batch = max_batch
        self.fill_window_s = fill_window_s
        self.status = ConsumerStatus()
        self._stopping = asyncio.Event()
        # What this consumer last committed per partition, to notice a broker that forgot it.
        self._committed: dict[TopicPartition, int] = {}
        # Only the embedded broker forgets (its log is in memory): Apache Kafka keeps offsets.
        self._broker_may_forget = broker_may_forget
        # Counts revocations: a batch that saw one must not commit (see _process).
        self._rebalances = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id or group_of(service),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_poll_records=max_batch,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            max_poll_interval_ms=300_000,
        )

    async def run(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))
        self.status.started = True
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                if batches:
                    await self._process(batches)
                else:
                    self._mark_progress()
                self._record_lag()
        finally:
            self.status.started = False
            await self._consumer.stop()

    def stop(self) -> None:
        self._stopping.set()

    def _mark_progress(self) -> None:
        self.status.last_progress = time.monotonic()
        CONSUMER_LAST_PROGRESS.labels(self.service).set(time.time())

    def _record_lag(self) -> None:
        # end_offsets() is wrong on Tansu (architecture §6.3); highwater() after a fetch is right.
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = self._position(tp)
            if position is None:
                continue
            lag = max(0, highwater - position)
            self.status.lag[tp] = lag
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(lag)

    async def _forgotten(self, offsets: dict[TopicPartition, int]) -> list[TopicPartition]:
        """Partitions whose committed offset the broker no longer holds, rewound to it.

        A broker that restarts without its log (the embedded Tansu keeps it in memory) starts
        every partition again at offset 0 and forgets the group's offsets. This consumer's
        position still points into the old log, so it would skip the new log's first records.
        Before each commit the broker's committed offsets are checked against ours (one
        request); where the broker is behind, the partition is read again from what the
        broker holds (the beginning when nothing), and the batch is not committed for it.
        Replayed records are harmless: every handler is idempotent."""
        known = [tp for tp in offsets if tp in self._committed]
        if not known or not self._broker_may_forget:
            return []
        held = await self._consumer._coordinator.fetch_committed_offsets(known)
        forgotten = []
        for tp in known:
            broker_offset = held[tp].offset if tp in held else -1
            if broker_offset >= self._committed[tp]:
                continue
            forgotten.append(tp)
            del self._committed[tp]
            if broker_offset < 0:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, broker_offset)
        if forgotten:
            log.warning(
                "the broker lost the committed offsets of %s; reading them again",
                sorted(f"{tp.topic}/{tp.partition}" for tp in forgotten),
            )
        return forgotten

    def _position(self, tp: TopicPartition) -> int | None:
        # The position of the next record handed to us; `position()` would block for one.
        try:
            state = self._consumer._subscription.subscription.assignment.state_value(tp)
        except AttributeError:
            return None
        return state.position if state is not None and state.has_valid_position else None

    def _waiting(self) -> int:
        """Records on the broker past what this consumer was handed, as of the last fetch."""
        waiting = 0
        for tp in self._consumer.assignment():
            highwater, position = self._consumer.highwater(tp), self._position(tp)
            if highwater is not None and position is not None:
                waiting += max(0, highwater - position)
        return waiting

    async def _fill(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Under a backlog, top the batch up towards `max_batch`.

        A handler's per-key work (scoring reads, re-scores and writes each touched account
        once per batch) is then shared by more records. A fetch returns only what is buffered,
        so a backlog otherwise arrives in batches far below `max_batch`. Without a backlog
        (fewer than a tenth of `max_batch` waiting) the batch goes as it is: no added latency.
        """
        count = sum(len(records) for records in batches.values())
        deadline = time.monotonic() + self.fill_window_s
        while (
            not self._stopping.is_set()
            and count < self.max_batch
            and self._waiting() >= max(1, self.max_batch // 10)
            and time.monotonic() < deadline
        ):
            more = await self._consumer.getmany(timeout_ms=50, max_records=self.max_batch - count)
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)

    async def _process(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        if self.status.first_records_at is None:
            self.status.first_records_at = time.time()
        rebalances = self._rebalances
        read_ns = time.time_ns()  # the batch's first records handed over (traces)
        await self._fill(batches)
        started = time.perf_counter()  # the batch's handling and commit, not its top-up
        records = [record for tp_records in batches.values() for record in tp_records]
        if tracing.enabled():
            # One span per batch, linked to its records' contexts; handlers open per-record
            # spans under it for what goes on to the next stage (kizashi.runtime.tracing).
            with tracing.batch_span(self.service, self.topics, records, read_ns):
                await self._handle_until_done(records)
        else:
            await self._handle_until_done(records)
        offsets = {
            tp: tp_records[-1].offset + 1
            for tp, tp_records in batches.items()
            if tp in self._consumer.assignment()
        }
        if self._rebalances != rebalances:
            # The group rebalanced while the batch ran (e.g. a broker that restarted and forgot
            # the group). Its offsets belong to the old assignment; committing them now could
            # move the new one past records it never read. They replay, harmlessly.
            log.warning("partitions moved while a batch ran; not committing it, it will replay")
            offsets = {}
        for tp in await self._forgotten(offsets):
            del offsets[tp]
        if offsets:
            try:
                await self._consumer.commit(offsets)
                self._committed.update(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                # The group rebalanced while the batch ran: its new owner replays these
                # records, and every handler is idempotent (event ids, deterministic ids).
                log.warning("commit refused after a rebalance; records will replay: %s", error)
        BATCH_DURATION.labels(self.service).observe(time.perf_counter() - started)
        CONSUMED_BATCHES.labels(self.service).inc()
        for tp, tp_records in batches.items():
            CONSUMED_RECORDS.labels(self.service, tp.topic).inc(len(tp_records))
        self._mark_progress()

    async def _handle_until_done(self, records: list[ConsumerRecord]) -> None:
        """Transient failures retry the batch (never skip); a bad record is isolated and
        dead-lettered so that it cannot block its partition."""
        delay = 0.2
        while True:
            try:
                for record, error in await self.handler(records):
                    await self.dead_letter(record, error)
                return
            except PermanentRecordError as error:
                if len(records) == 1:
                    await self.dead_letter(records[0], error)
                    return
            except Exception as error:
                if is_transient(error) or isinstance(error, BrokerUnavailable):
                    CONSUMER_RETRIES.labels(self.service, type(error).__name__).inc()
                    log.warning("transient failure, retrying the batch: %s", type(error).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if len(records) == 1:
                    log.exception("record failed; dead-lettering it")
                    await self.dead_letter(records[0], error)
                    return
            # Split to find the bad record(s); the good ones still commit together.
            middle = len(records) // 2
            await self._handle_until_done(records[:middle])
            await self._handle_until_done(records[middle:])
            return

    async def dead_letter(self, record: ConsumerRecord, error: BaseException) -> None:
        letter = DeadLetter(
            service=self.service,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            value=(record.value or b"").decode("utf-8", "replace"),
            reason=str(error)[:2000] or type(error).__name__,
            error_type=type(error).__name__,
            failed_at=datetime.now(UTC),
        )
        while True:
            try:
                await self.dead_letters.send_all(
                    [OutgoingRecord(DEAD_LETTER, letter.key or "", encode(letter))]
                )
                break
            except BrokerUnavailable:
                await asyncio.sleep(1)
        DEAD_LETTERS.labels(self.service, record.topic, letter.error_type).inc()
        log.warning(
            "record dead-lettered: %s",
            letter.reason[:300],
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error_type": letter.error_type,
                **_message_ids(record.value),
            },
        )


def _message_ids(value: bytes | None) -> dict[str, str]:
    """The event or signal id of a record, when it has one, so a log line can be traced."""
    try:
        payload = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(payload, dict):
        return {}
    return {k: str(payload[k])[:128] for k in ("event_id", "signal_id") if payload.get(k)}
