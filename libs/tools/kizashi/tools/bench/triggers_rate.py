"""Triggers' own rate on scoring's own output, for `kizashi bench e2e` (issue #17 item 3).

Right after scoring alone (kizashi.tools.bench.scoring_rate), its `scores.changed` topic holds
every change scoring published for the bench's stream. The triggers service's own handler
(`handle_changes`) under the service's own `BatchConsumer`, in as many processes as scoring
had replicas (two, one group; deploy/k8s runs two of each), with the collector tuned as the
service tunes it, then reads that topic from its start on the stack's own PostgreSQL and
broker. The signals it fires are counted, not published (the
stack's notifier must not see them), and its rows (signals, rule states, memories) are removed
afterwards with scoring's. The clock runs from the first batch handed over to the moment the
group's committed offsets reach the topic's end, as for scoring.

So the two rates compare on one footing: scoring's output (changes/s while it ran alone) and
what triggers alone takes of it (changes/s).
"""

import asyncio
import contextlib
import multiprocessing
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from kizashi.contracts.topics import DEAD_LETTER
from kizashi.tools.bench.scoring import Run, _connect, _like, counted_handler, until_committed


@dataclass(frozen=True)
class TriggersRate:
    changes: int
    replicas: int
    seconds: float
    batches: int
    signals: int

    @property
    def changes_per_s(self) -> float:
        return self.changes / self.seconds


async def topic_ends(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Each partition's end, from a fetch's high-water mark (the embedded broker's ListOffsets
    answer is wrong, architecture §6.3); empty partitions are left out."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=1024
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=500, max_records=1)
            if all(consumer.highwater(tp) is not None for tp in partitions):
                break
        return {tp: h for tp in partitions if (h := consumer.highwater(tp) or 0) > 0}
    finally:
        await consumer.stop()


async def measure_triggers(
    url: str, bootstrap: str, *, topic: str, replicas: int = 2
) -> TriggersRate:
    ends = await topic_ends(bootstrap, topic)
    group = f"kizashi-bench-{uuid.uuid4().hex[:8]}-triggers"
    context = multiprocessing.get_context("spawn")  # no inherited event loop or sockets
    first_batch_at = context.Value("d", 0.0)
    batches = context.Value("i", 0)
    signals = context.Value("i", 0)
    stop = context.Event()
    processes = [
        context.Process(
            target=_triggers_process,
            args=(url, bootstrap, topic, group, first_batch_at, batches, signals, stop),
            name=f"triggers-alone-{index}",
        )
        for index in range(replicas)
    ]
    for process in processes:
        process.start()
    watcher = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await watcher.start()

    def check() -> None:
        for process in processes:
            if not process.is_alive():
                raise RuntimeError(f"{process.name} exited with code {process.exitcode}")

    try:
        seconds, count = await until_committed(
            "triggers", watcher, ends, lambda: Run(first_batch_at.value, batches.value), check
        )
    finally:
        await watcher.stop()
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return TriggersRate(sum(ends.values()), replicas, seconds, count, signals.value)


async def forget_triggers_rows(url: str, prefix: str) -> None:
    connection = await _connect(url)
    try:
        like = _like(prefix)
        await connection.execute(
            """DELETE FROM signal_actions WHERE signal_id IN
               (SELECT signal_id FROM signals WHERE account_id LIKE $1)""",
            like,
        )
        for table in ("signals", "rule_states", "trigger_accounts"):
            await connection.execute(
                f"DELETE FROM {table} WHERE account_id LIKE $1",  # noqa: S608 - fixed names
                like,
            )
    finally:
        await connection.close()


class _CountingProducer:
    """Stands in for the broker: the signals are counted, never published. A dead-lettered
    change would be counted too, and fails the measurement instead (none is expected)."""

    def __init__(self, signals) -> None:
        self.signals = signals

    async def send_all(self, records) -> None:
        if any(r.topic == DEAD_LETTER for r in records):
            raise RuntimeError("triggers dead-lettered one of scoring's own changes")
        with self.signals.get_lock():
            self.signals.value += len(records)


def _triggers_process(url, bootstrap, topic, group, first_batch_at, batches, signals, stop):
    asyncio.run(_serve(url, bootstrap, topic, group, first_batch_at, batches, signals, stop))


async def _serve(url, bootstrap, topic, group, first_batch_at, batches, signals, stop) -> None:
    from kizashi.runtime.collector import tune_garbage_collector
    from kizashi.runtime.consumer import BatchConsumer
    from kizashi.runtime.db import create_engine
    from kizashi.runtime.lifecycle import ServiceRuntime
    from kizashi.triggers.consumer import handle_changes
    from kizashi.triggers.rules import load_rules_config
    from kizashi.triggers.settings import TriggersSettings
    from kizashi.triggers.state import TriggersState

    settings = TriggersSettings(database_url=url, kafka_bootstrap_servers=bootstrap)
    engine = create_engine(url, pool_size=settings.db_pool_size)
    runtime = ServiceRuntime(service="triggers", settings=settings, engine=engine)
    runtime.producer = _CountingProducer(signals)  # type: ignore[assignment]
    service = TriggersState(runtime=runtime, rules=load_rules_config(settings.config_dir))
    tune_garbage_collector()  # as the triggers service does at start-up

    handler = counted_handler(
        lambda records: handle_changes(service, records),
        lambda: consumer.status,
        first_batch_at,
        batches,
    )

    consumer = BatchConsumer(
        service="triggers",
        topics=[topic],
        bootstrap_servers=bootstrap,
        handler=handler,
        dead_letters=runtime.producer,  # type: ignore[arg-type]
        group_id=group,
        max_batch=settings.consumer_max_batch,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    task = asyncio.create_task(consumer.run())
    stopped = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, stop.wait))
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            stop.set()
            task.result()
            raise RuntimeError("the triggers consumer stopped on its own")
    finally:
        consumer.stop()
        with contextlib.suppress(Exception):
            await task
        await engine.dispose()
