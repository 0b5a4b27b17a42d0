"""The shared batch consumer loop against a real broker: how a backlog is batched."""

import asyncio
import uuid

from aiokafka import AIOKafkaProducer

from kizashi.runtime.consumer import BatchConsumer
from kizashi.runtime.kafka import Producer, ensure_topics

# Records this big make one fetch (4 MiB per partition) return about 40 of them, so only
# topping the batch up can fill a batch of 100.
RECORD = b"x" * 100_000


async def test_a_backlog_is_handled_in_full_batches(bootstrap_servers) -> None:
    topic = f"kizashi.test.backlog.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap_servers, [topic], partitions=1)
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, max_request_size=2_000_000)
    await raw.start()
    try:
        for index in range(120):
            await raw.send(topic, RECORD, key=str(index).encode())
        await raw.flush()
    finally:
        await raw.stop()

    sizes: list[int] = []
    done = asyncio.Event()

    async def handler(records):
        sizes.append(len(records))
        if sum(sizes) >= 120:
            done.set()
        return []

    dead_letters = Producer(bootstrap_servers, service="test")
    await dead_letters.start()
    consumer = BatchConsumer(
        service="test",
        topics=[topic],
        bootstrap_servers=bootstrap_servers,
        handler=handler,
        dead_letters=dead_letters,
        group_id=f"backlog-{uuid.uuid4().hex[:8]}",
        max_batch=100,
        fill_window_s=30,  # a loaded machine must not cut the top-up short
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            await done.wait()
    finally:
        consumer.stop()
        await task
        await dead_letters.stop()
    # A full batch first, then the rest; not the ~40 a single fetch returns.
    assert sizes == [100, 20]
