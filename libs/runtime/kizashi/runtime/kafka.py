"""Kafka plumbing: topic creation and the acks=all producer (the consumer loop is in
kizashi.runtime.consumer)."""

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    DuplicateSequenceNumber,
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner

from kizashi.contracts.topics import ALL_TOPICS
from kizashi.runtime import tracing
from kizashi.runtime.metrics import (
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
    # The trace context to send on (an OpenTelemetry Context); None: the current one. Read
    # only when tracing is on (kizashi.runtime.tracing).
    context: Any = None


def encode(payload: Any) -> bytes:
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump(mode="json")
    return orjson.dumps(payload)


# Tansu's cluster id unless told another; Apache Kafka's is a random base64 UUID.
EMBEDDED_CLUSTER_ID = "tansu_cluster"
MAX_REPLICATION = 3


async def flavour_of(bootstrap_servers: str, configured: str = "auto") -> str:
    """ "kafka" or "embedded" (Tansu): the configured one, else told by the cluster id.

    The embedded broker keeps workarounds (architecture §6.3): no idempotent producer (it answers
    InitProducerId with UnknownError) and a check before each commit that it did not forget
    the group's offsets (its log is in memory). Apache Kafka needs neither."""
    if configured != "auto":
        return configured
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        cluster_id = (await admin.describe_cluster()).get("cluster_id")
    finally:
        await admin.close()
    return "embedded" if cluster_id == EMBEDDED_CLUSTER_ID else "kafka"


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str] = ALL_TOPICS, partitions: int = DEFAULT_PARTITIONS
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            # Three copies where the cluster has three brokers (with min.insync.replicas=2 an
            # acks=all write survives one broker down); one on a single broker.
            brokers = len((await admin.describe_cluster())["brokers"])
            replicas = max(1, min(MAX_REPLICATION, brokers))
            try:
                await admin.create_topics(
                    [NewTopic(t, partitions, replication_factor=replicas) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another service created it first
    finally:
        await admin.close()


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time: the caller must not report success."""


class RecordRejected(Exception):
    """The broker refused the records for good (too large, not allowed): retrying won't help."""


# The idempotent producer's own state is wrong (not the records): a new producer fixes it.
PRODUCER_STATE_ERRORS = (
    OutOfOrderSequenceNumber,
    InvalidProducerEpoch,
    DuplicateSequenceNumber,
    ProducerFenced,
)


def _sender_died(producer: AIOKafkaProducer) -> bool:
    """aiokafka's sender task ended (it does on a producer-state error): nothing sends now."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


class Producer:
    """acks=all; every send is awaited with a time limit, so success means acknowledged.

    Idempotent on Apache Kafka (`idempotent=True`: a retried batch is not written twice). The
    idempotent producer fails on Tansu (architecture §6.3); duplicates are handled by event ids.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        service: str,
        send_timeout_s: float = 10.0,
        idempotent: bool = False,
    ):
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
        self._partition_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._idempotent = idempotent
        self._producer = self._new_producer()
        self._renewing = asyncio.Lock()
        self._retired: set[asyncio.Task] = set()
        self._started = False

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            enable_idempotence=self._idempotent,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=int(self.send_timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def _renew(self, broken: AIOKafkaProducer) -> None:
        """A new idempotent producer (a new producer id, sequences from 0) in place of one whose
        sequence state broke. aiokafka's sender task dies on OutOfOrderSequenceNumber (a batch
        lost or expired while the whole cluster restarted leaves a gap in the sequence), and
        that producer refuses every later send: ingest answered 503 for good. The old one is
        stopped in the background; records it still held are sent again by the callers (their
        event ids make a repeat harmless)."""
        async with self._renewing:
            if self._producer is not broken or not self._started:
                return  # another caller renewed it already
            fresh = self._new_producer()
            await fresh.start()
            self._producer = fresh
        log.warning("%s: the idempotent producer's state broke; started a new one", self.service)

        async def retire() -> None:
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await broken.stop()
            except Exception:  # it is broken; whatever it still says does not matter
                pass

        task = asyncio.create_task(retire())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        """Send a batch from one loop and wait until the broker acknowledged all of it."""
        if not records:
            return
        started = time.perf_counter()
        producer = self._producer
        try:
            async with asyncio.timeout(self.send_timeout_s):
                if self._check_topics:
                    await ensure_topics(self.bootstrap_servers)
                    self._check_topics = False
                futures = await self._send_batches(records)
                await asyncio.gather(*futures)
        except KafkaError as error:
            if self._idempotent and (
                isinstance(error, PRODUCER_STATE_ERRORS) or _sender_died(producer)
            ):
                self._forget_partitions()
                await self._renew(producer)
                raise BrokerUnavailable(f"{type(error).__name__}: {error}") from error
            if not getattr(error, "retriable", False) and not isinstance(
                error, KafkaConnectionError | KafkaTimeoutError
            ):
                # Retrying cannot help (a record too large, a topic we may not write): let the
                # caller refuse or dead-letter it instead of waiting for the broker forever.
                raise RecordRejected(f"{type(error).__name__}: {error}") from error
            self._forget_partitions()
            raise BrokerUnavailable(f"{type(error).__name__}: {error}") from error
        except (TimeoutError, OSError) as error:
            self._forget_partitions()
            if self._idempotent and _sender_died(producer):
                await self._renew(producer)
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
            # aiokafka queues one batch per partition and lets every other caller wait for
            # it to drain; concurrent requests racing for that slot starved one another into
            # KafkaTimeoutError under load. A FIFO lock per partition takes turns fairly.
            lock = self._partition_locks.setdefault((topic, partition), asyncio.Lock())
            async with lock:
                futures.extend(await self._send_partition(topic, partition, group))
        return futures

    async def _send_partition(
        self, topic: str, partition: int, group: list[OutgoingRecord]
    ) -> list[asyncio.Future]:
        futures: list[asyncio.Future] = []
        batch = self._producer.create_batch()
        # The W3C traceparent of each record's context, in its headers (tracing on only).
        injector = tracing.HeaderInjector() if tracing.enabled() else None
        for record in group:
            key, headers = record.key.encode(), list(record.headers)
            if injector is not None:
                headers.extend(injector.headers(record.context))
            if batch.append(key=key, value=record.value, timestamp=None, headers=headers):
                continue
            if batch.record_count():
                futures.append(await self._send_closed(batch, topic, partition))
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
            futures.append(await self._send_closed(batch, topic, partition))
        return futures

    async def _send_closed(self, batch: Any, topic: str, partition: int) -> asyncio.Future:
        # A closed batch leaves at once; an open one lingers linger_ms waiting for records
        # that a ready-made batch never gets (that wait capped ingest at ~30k events/s).
        batch.close()
        return await self._producer.send_batch(batch, topic, partition=partition)

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

    def _forget_partitions(self) -> None:
        self._check_topics = True
        self._partitions.clear()  # a broker that came back may have other partitions

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
