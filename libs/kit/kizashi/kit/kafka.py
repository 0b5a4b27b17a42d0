"""Kafka plumbing: topic creation, an acks=all producer, and the batch consumer loop.

The consumer follows DESIGN §3/§4: records are handled a batch at a time, offsets are
committed explicitly per partition only after the handler's database transaction committed,
records that cannot be processed go to the dead-letter topic, and transient failures (the
database or broker away) retry the same batch instead of skipping it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.deadletter import DeadLetter
from kizashi.contracts.topics import ALL_TOPICS, DEAD_LETTER
from kizashi.kit.db import is_transient
from kizashi.kit.metrics import (
    BATCH_DURATION,
    CONSUMED_BATCHES,
    CONSUMED_RECORDS,
    CONSUMER_LAG,
    CONSUMER_LAST_PROGRESS,
    CONSUMER_RETRIES,
    DEAD_LETTERS,
    KAFKA_PRODUCE_DURATION,
    KAFKA_PRODUCED,
)

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 4


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def encode(payload: Any) -> bytes:
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump(mode="json")
    return orjson.dumps(payload)


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str] = ALL_TOPICS, partitions: int = DEFAULT_PARTITIONS
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another service created it first
    finally:
        await admin.close()


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time: the caller must not report success."""


class Producer:
    """acks=all; every send is awaited with a time limit, so success means acknowledged.

    The idempotent producer fails on Tansu (DESIGN §3); duplicates are handled by event ids.
    """

    def __init__(self, bootstrap_servers: str, *, service: str, send_timeout_s: float = 10.0):
        self.service = service
        self.send_timeout_s = send_timeout_s
        self.bootstrap_servers = bootstrap_servers
        # After a failed send, make sure the topics exist before the next one: a broker that
        # restarted empty (the embedded one keeps its log in memory) would otherwise take
        # records for topics that its metadata does not list, where no consumer finds them.
        self._check_topics = False
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._partition_cache: dict[tuple[str, int, bytes], int] = {}
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=int(send_timeout_s * 1000),
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        """Send a batch from one loop and wait until the broker acknowledged all of it."""
        if not records:
            return
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.send_timeout_s):
                if self._check_topics:
                    await ensure_topics(self.bootstrap_servers)
                    self._check_topics = False
                futures = await self._send_batches(records)
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError, OSError) as error:
            self._check_topics = True
            self._partitions.clear()  # a broker that came back may have other partitions
            raise BrokerUnavailable(f"{type(error).__name__}: {error}") from error
        KAFKA_PRODUCE_DURATION.labels(self.service).observe(time.perf_counter() - started)
        counts: dict[str, int] = {}
        for r in records:
            counts[r.topic] = counts.get(r.topic, 0) + 1
        for topic, count in counts.items():
            KAFKA_PRODUCED.labels(self.service, topic).inc(count)

    async def _send_batches(self, records: Sequence[OutgoingRecord]) -> list[asyncio.Future]:
        """One record batch per partition (create_batch/send_batch) instead of one `send()`
        per record: the per-record cost of `send()` dominated ingest's hot path."""
        by_partition: dict[tuple[str, int], list[OutgoingRecord]] = {}
        for record in records:
            key = record.key.encode()
            partition = await self._partition_of(record.topic, key)
            by_partition.setdefault((record.topic, partition), []).append(record)
        futures: list[asyncio.Future] = []
        for (topic, partition), group in by_partition.items():
            batch = self._producer.create_batch()
            for record in group:
                key, headers = record.key.encode(), list(record.headers)
                if batch.append(key=key, value=record.value, timestamp=None, headers=headers):
                    continue
                if batch.record_count():
                    futures.append(
                        await self._producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = self._producer.create_batch()
                if batch.append(key=key, value=record.value, timestamp=None, headers=headers):
                    continue
                # Larger than a whole batch: the producer's own path handles (or refuses) it.
                futures.append(
                    await self._producer.send(
                        topic, record.value, key=key, partition=partition, headers=headers or None
                    )
                )
            if batch.record_count():
                futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures

    async def _partition_of(self, topic: str, key: bytes) -> int:
        """The default partitioner's choice (murmur2 of the key), cached per key: the same
        account lands on the same partition as with `send()`."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = partitions
        cache_key = (topic, len(partitions), key)
        partition = self._partition_cache.get(cache_key)
        if partition is None:
            if len(self._partition_cache) > 100_000:
                self._partition_cache.clear()
            partition = self._partitioner(key, partitions, partitions)
            self._partition_cache[cache_key] = partition
        return partition

    async def connected(self) -> bool:
        """True when the broker answers a metadata request now."""
        if not self._started:
            return False
        try:
            client = self._producer.client
            async with asyncio.timeout(2):
                return bool(await client.fetch_all_metadata())
        except Exception:  # readiness answers "no", whatever the reason
            return False


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
    ) -> None:
        self.service = service
        self.topics = list(topics)
        self.handler = handler
        self.dead_letters = dead_letters
        self.max_batch = max_batch
        self.status = ConsumerStatus()
        self._stopping = asyncio.Event()
        # What this consumer last committed per partition, to notice a broker that forgot it.
        self._committed: dict[TopicPartition, int] = {}
        # Counts revocations: a batch that saw one must not commit (see _process).
        self._rebalances = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id or f"kizashi-{service}",
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
        # end_offsets() is wrong on Tansu (DESIGN §3); highwater() after a fetch is right.
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
        if not known:
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

    async def _process(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [record for tp_records in batches.values() for record in tp_records]
        started = time.perf_counter()
        rebalances = self._rebalances
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


def decode_json(record: ConsumerRecord) -> Any:
    try:
        return orjson.loads(record.value)
    except orjson.JSONDecodeError as error:
        raise PermanentRecordError(f"not JSON: {error}") from error
