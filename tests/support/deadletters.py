"""Reading the dead-letter topic in tests: the letters of some record keys (account ids)."""

import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from kizashi.contracts.topics import DEAD_LETTER


async def dead_letters_for(bootstrap: str, keys: set[str], idle_s: float = 1.5) -> list[dict]:
    """Every dead letter whose record key is one of `keys`, read from the beginning of the
    topic until it stays quiet for `idle_s` (end offsets are wrong on Tansu, architecture §6.3)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        numbers = consumer.partitions_for_topic(DEAD_LETTER) or ()
        partitions = [TopicPartition(DEAD_LETTER, p) for p in numbers]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[dict] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    letter = orjson.loads(record.value)
                    if letter.get("key") in keys:
                        found.append(letter)
                quiet_since = time.monotonic()
        return found
    finally:
        await consumer.stop()
