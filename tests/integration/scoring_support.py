"""A scoring service of the tests' own: a fresh database on the session's PostgreSQL server and
its own broker, so sweeping "every due account" or reading `scores.changed` sees only what
these tests made (and the shared stack never sees these accounts)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.topics import INGEST_TOPICS, SCORES_CHANGED
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.kafka import Producer, ensure_topics
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.scoring.config import ScoringConfig, load_scoring_config
from kizashi.scoring.settings import ScoringSettings
from kizashi.scoring.state import ScoringState
from kizashi.tools.embedded import EmbeddedBroker, free_port
from kizashi.tools.migrate import upgrade_async
from tests.support.infra import _create_database, _drop_database, _with_database

_offsets = iter(range(10**9))


@asynccontextmanager
async def private_scoring(database_url: str, workdir: Path) -> AsyncIterator[dict]:
    name = f"kizashi_scoring_{uuid.uuid4().hex[:10]}"
    await _create_database(database_url, name)
    url = _with_database(database_url, name)
    broker = EmbeddedBroker(workdir / f"broker-{name}", free_port())
    await asyncio.to_thread(broker.start)
    try:
        await upgrade_async(url)
        await ensure_topics(broker.bootstrap_servers)
        yield {"url": url, "bootstrap": broker.bootstrap_servers}
    finally:
        await asyncio.to_thread(broker.stop)
        await _drop_database(database_url, name)


@asynccontextmanager
async def scoring_service(
    servers: dict, config: ScoringConfig | None = None
) -> AsyncIterator[ScoringState]:
    settings = ScoringSettings(
        database_url=servers["url"], kafka_bootstrap_servers=servers["bootstrap"]
    )
    runtime = ServiceRuntime(
        service="scoring", settings=settings, engine=create_engine(servers["url"])
    )
    runtime.producer = Producer(servers["bootstrap"], service="scoring")
    await runtime.producer.start()
    try:
        yield ScoringState(runtime=runtime, config=config or load_scoring_config(None))
    finally:
        await runtime.stop()


def event(kind: str, account: str, at: datetime, **fields: Any) -> dict:
    """An input event as ingest writes it to Kafka: occurred_at `at`, received now (unless
    `received_at` says otherwise), from the ingest key `tests` (unless `source` says)."""
    return {
        "type": kind,
        "account_id": account,
        "event_id": fields.pop("event_id", uuid.uuid4().hex),
        "occurred_at": at.isoformat(),
        "received_at": fields.pop("received_at", datetime.now(UTC)).isoformat(),
        "source": fields.pop("source", "tests"),
        **fields,
    }


def usage(account: str, at: datetime, **fields: Any) -> dict:
    fields.setdefault("action", "feature_used")
    fields.setdefault("user_id", "u1")
    fields.setdefault("feature", "reports")
    return event("product_usage", account, at, **fields)


def records(events: list[dict]) -> list[ConsumerRecord]:
    """Kafka records of these events, as the consumer hands them to the handler."""
    out = []
    for item in events:
        value = orjson.dumps(item)
        key = item["account_id"].encode()
        out.append(
            ConsumerRecord(
                INGEST_TOPICS[item["type"]],
                0,
                next(_offsets),
                0,
                0,
                key,
                value,
                None,
                len(key),
                len(value),
                [],
            )
        )
    return out


async def account_row(service: ScoringState, account: str) -> dict | None:
    async with raw_transaction(service.engine) as connection:
        row = await connection.fetchrow(
            """
            SELECT a.state::text AS state, s.cs, s.op, s.segment, s.priority,
                   s.features::text AS features, s.computed_at, s.next_check_at,
                   s.config_version,
                   (SELECT count(*) FROM processed_events p WHERE p.account_id = a.account_id)
                       AS processed
            FROM accounts a JOIN scores s USING (account_id)
            WHERE a.account_id = $1
            """,
            account,
        )
    if row is None:
        return None
    out = dict(row)
    out["state"] = orjson.loads(out["state"])
    out["features"] = orjson.loads(out["features"])
    return out


async def read_topic(bootstrap: str, topic: str, *, idle_s: float = 1.0) -> list[ConsumerRecord]:
    """Every record now on `topic`, read from the start (no group, nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[ConsumerRecord] = []
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            if not batch:
                return found
            for tp_records in batch.values():
                found.extend(tp_records)
    finally:
        await consumer.stop()


async def changes_for(bootstrap: str, account: str) -> list[ScoresChanged]:
    """The contract-validated `scores.changed` messages of one account, in order."""
    found = [r for r in await read_topic(bootstrap, SCORES_CHANGED) if r.key == account.encode()]
    found.sort(key=lambda r: r.offset)
    return [ScoresChanged.model_validate_json(r.value) for r in found]
