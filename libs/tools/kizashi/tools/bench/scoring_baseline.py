"""The baselines of `kizashi bench scoring`, measured on the same stream in the same run: what
any correct consumer of the event topics must do without scoring (decode, claim the ids, one
set-based upsert of per-account aggregates per batch), and the decode floor (scoring's
contract decode and one count upsert). kizashi.tools.bench.scoring's docstring says more."""

import asyncio
import contextlib
import time
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from kizashi.tools.bench.scoring import Run, _connect, until_committed
from kizashi.tools.settings import ToolSettings

_AGGREGATE_TABLE = """CREATE TABLE {table} (
    account_id text PRIMARY KEY, events bigint NOT NULL, newest text NOT NULL DEFAULT ''
)"""
_IDS_TABLE = """CREATE TABLE {table}_ids (
    source text NOT NULL, account_id text NOT NULL, event_id text NOT NULL,
    PRIMARY KEY (source, account_id, event_id)
)"""
# The table names are the bench's own, never input.
_CLAIM = """
    INSERT INTO {table}_ids (source, account_id, event_id)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING RETURNING source, account_id, event_id
"""
_UPSERT_AGGREGATES = """
    INSERT INTO {table} (account_id, events, newest)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
    ON CONFLICT (account_id) DO UPDATE SET events = {table}.events + EXCLUDED.events,
        newest = greatest({table}.newest, EXCLUDED.newest)
"""
_UPSERT_COUNTS = """
    INSERT INTO {table} (account_id, events)
    SELECT * FROM unnest($1::text[], $2::bigint[])
    ON CONFLICT (account_id) DO UPDATE SET events = {table}.events + EXCLUDED.events
"""


async def _fair_batch(connection, table: str, batches: dict) -> None:
    """What any correct consumer of these topics does with a batch: decode, claim the event
    ids, one set-based upsert of per-account aggregates (module docstring)."""
    events = {}
    for records in batches.values():
        for record in records:
            event = orjson.loads(record.value)
            events[(event["source"], event["account_id"], event["event_id"])] = event
    keys = sorted(events)
    async with connection.transaction():
        claimed = await connection.fetch(
            _CLAIM.format(table=table),
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
        )
        counts: Counter = Counter()
        newest: dict[str, str] = {}
        for row in claimed:
            account = row["account_id"]
            event = events[(row["source"], account, row["event_id"])]
            counts[account] += 1
            newest[account] = max(newest.get(account, ""), event["occurred_at"])
        accounts = sorted(counts)
        await connection.execute(
            _UPSERT_AGGREGATES.format(table=table),
            accounts,
            [counts[a] for a in accounts],
            [newest[a] for a in accounts],
        )


async def _decode_batch(connection, table: str, batches: dict) -> None:
    from kizashi.runtime.collector import collection_paused
    from kizashi.scoring.consumer import decode as decode_events

    with collection_paused():  # as the scoring consumer decodes
        for records in batches.values():
            decode_events(records)
    counts = Counter(r.key for records in batches.values() for r in records)
    keys = sorted(counts)
    async with connection.transaction():
        await connection.execute(
            _UPSERT_COUNTS.format(table=table),
            [k.decode() for k in keys],
            [counts[k] for k in keys],
        )


async def run_baseline(
    settings: ToolSettings,
    url: str,
    bootstrap: str,
    topics: list[str],
    ends: dict[TopicPartition, int],
    table: str,
    group: str,
    *,
    decode: bool = False,
) -> tuple[float, int]:
    """The baseline, or with `decode` the decode floor (module docstring)."""
    connection = await _connect(url)
    await connection.execute(_AGGREGATE_TABLE.format(table=table))
    await connection.execute(_IDS_TABLE.format(table=table))
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=settings.scoring_max_batch,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    run = Run()
    handle = _decode_batch if decode else _fair_batch

    async def loop() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=settings.scoring_max_batch)
            if not batches:
                continue
            run.first_batch_at = run.first_batch_at or time.time()
            await handle(connection, table, batches)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
            run.batches += 1

    task = asyncio.create_task(loop())
    try:
        label = "decode floor" if decode else "baseline"
        return await until_committed(label, consumer, ends, lambda: run)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await consumer.stop()
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_ids")
        await connection.close()
