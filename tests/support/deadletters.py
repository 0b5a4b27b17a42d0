"""Reading topics in tests: the records of some record keys (account ids), and the dead-letter
topic's letters for them."""

import time
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.topics import DEAD_LETTER


async def _scan(
    bootstrap: str, topic: str, pick: Callable[[ConsumerRecord], dict | None], idle_s: float
) -> list[dict]:
    """What `pick` keeps of `topic`'s records, read from the beginning until the topic stays
    quiet for `idle_s` (end offsets are wrong on Tansu, architecture §6.3)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        numbers = consumer.partitions_for_topic(topic) or ()
        partitions = [TopicPartition(topic, p) for p in numbers]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[dict] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    kept = pick(record)
                    if kept is not None:
                        found.append(kept)
                quiet_since = time.monotonic()
        return found
    finally:
        await consumer.stop()


async def records_for(
    bootstrap: str, topic: str, keys: set[str], idle_s: float = 1.5
) -> list[dict]:
    """Every record of `topic` (its JSON value) whose key is one of `keys`."""
    wanted = {key.encode() for key in keys}
    return await _scan(
        bootstrap, topic, lambda r: orjson.loads(r.value) if r.key in wanted else None, idle_s
    )


async def dead_letters_for(bootstrap: str, keys: set[str], idle_s: float = 1.5) -> list[dict]:
    """Every dead letter whose record key is one of `keys`."""

    def pick(record: ConsumerRecord) -> dict | None:
        letter = orjson.loads(record.value)
        return letter if letter.get("key") in keys else None

    return await _scan(bootstrap, DEAD_LETTER, pick, idle_s)
