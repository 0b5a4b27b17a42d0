"""The broker goes away in the middle of a stream and comes back on the same port.

Ingest must answer 503 with Retry-After within a bounded time while it is away, report
/readyz 503, recover without a restart, and never answer 2xx for an event Kafka does not
hold. The embedded broker keeps its log in memory, so a restart empties it: the events
accepted before the stop are read back before the stop, and the ones accepted after the
restart are read back at the end. Between the stop and the restart, no 2xx is allowed.
"""

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from kizashi.contracts.topics import EVENT_TOPICS
from kizashi.tools.embedded import EmbeddedBroker, free_port

SEND_TIMEOUT_S = 2.0
# The answer while the broker is away: the send time limit plus generous room for a busy box.
ANSWER_WITHIN_S = SEND_TIMEOUT_S + 13


async def read_event_ids(bootstrap: str, idle_s: float = 2.0) -> set[str]:
    """Everything the event topics hold, read from the beginning (never from end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in EVENT_TOPICS.values()
            for p in (consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ids: set[str] = set()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                ids.update(orjson.loads(r.value)["event_id"] for r in records)
                quiet_since = time.monotonic()
        return ids
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


class Stream:
    """A client sending batches without pause; a batch answered 503 is sent again."""

    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self.gate = asyncio.Event()
        self.gate.set()
        self.idle = asyncio.Event()
        self.accepted: list[tuple[float, list[str]]] = []  # (answered at, event ids)
        self.unavailable: list[tuple[float, float, str | None]] = []  # (at, took, Retry-After)
        self.stopped = False

    async def run(self) -> None:
        batch = self._batch()
        while not self.stopped:
            if not self.gate.is_set():
                self.idle.set()
                await self.gate.wait()
                self.idle.clear()
            started = time.monotonic()
            response = await self.client.post("/v1/events", json={"events": batch})
            took = time.monotonic() - started
            if response.status_code == 202:
                self.accepted.append((time.monotonic(), [e["event_id"] for e in batch]))
                batch = self._batch()
            else:
                assert response.status_code == 503, response.text
                self.unavailable.append(
                    (time.monotonic(), took, response.headers.get("retry-after"))
                )
                await asyncio.sleep(0.2)

    async def pause(self) -> None:
        self.gate.clear()
        await self.idle.wait()

    @staticmethod
    def _batch() -> list[dict]:
        return [
            {
                "type": "product_usage",
                "account_id": f"outage-{i % 7}",
                "event_id": uuid.uuid4().hex,
                "action": "login",
            }
            for i in range(20)
        ]

    def ids_between(self, start: float, end: float) -> set[str]:
        return {i for at, ids in self.accepted if start <= at < end for i in ids}


async def _wait(probe, within: float, what: str):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def broker(workdir):
    server = EmbeddedBroker(workdir / f"outage-broker-{uuid.uuid4().hex[:6]}", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ingest(workdir, broker, database_url):
    port, key = free_port(), secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "KIZASHI_DATABASE_URL": database_url,
        "KIZASHI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KIZASHI_INGEST_KEYS": f"outage:{key}",
        "KIZASHI_INGEST_PORT": str(port),
        "KIZASHI_KAFKA_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
        "KIZASHI_DATA_DIR": str(workdir / "outage-ingest"),
    }
    log_path = workdir / f"outage-ingest-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "kizashi.tools.cli", "serve", "ingest"],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    yield url, key
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _readyz(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{url}/readyz", timeout=10)).status_code


async def test_every_2xx_event_is_in_kafka_across_a_broker_outage(broker, ingest):
    url, key = ingest
    stream = Stream(url, key)
    task = asyncio.create_task(stream.run())
    try:
        await _wait(lambda: _at_least(stream, 10), 60, "the first accepted batches")
        await stream.pause()
        before_stop = time.monotonic()
        accepted_before = stream.ids_between(0, before_stop)
        held_before = await read_event_ids(broker.bootstrap_servers)
        assert accepted_before <= held_before, "2xx events missing before the outage"

        broker.stop()
        stopped_at = time.monotonic()
        stream.gate.set()  # the stream goes on while the broker is away
        await _wait(lambda: _unavailable_after(stream, stopped_at, 3), 90, "503 answers")
        assert await _readyz(url) == 503

        restarting_at = time.monotonic()
        broker.start()
        await _wait(lambda: _accepted_after(stream, restarting_at, 10), 90, "recovery")
        assert await _readyz(url) == 200
        await stream.pause()
        end = time.monotonic()
    finally:
        stream.stopped = True
        stream.gate.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.client.aclose()

    assert stream.ids_between(stopped_at, restarting_at) == set(), "2xx while the broker was down"
    outage = [(took, retry) for at, took, retry in stream.unavailable if at >= stopped_at]
    assert outage and all(retry and int(retry) > 0 for _, retry in outage)
    assert max(took for took, _ in outage) < ANSWER_WITHIN_S
    accepted_after = stream.ids_between(restarting_at, end)
    assert accepted_after, "nothing accepted after the restart"
    held_after = await read_event_ids(broker.bootstrap_servers)
    missing = accepted_after - held_after
    assert not missing, f"{len(missing)} of {len(accepted_after)} 2xx events not in Kafka"


async def _at_least(stream: Stream, batches: int) -> bool:
    return len(stream.accepted) >= batches


async def _unavailable_after(stream: Stream, at: float, count: int) -> bool:
    return sum(1 for t, _, _ in stream.unavailable if t >= at) >= count


async def _accepted_after(stream: Stream, at: float, count: int) -> bool:
    return sum(1 for t, _ in stream.accepted if t >= at) >= count
