"""Dedup scoped to (source, account) within a stated window, and the silence sweep split
between replicas, against real PostgreSQL and a real broker.

- The same event id from two accounts (or two ingest keys) is applied for each; the same
  (source, account, id) again is not.
- Processed ids older than the window are pruned by the periodic task, in bounded chunks,
  through the index on applied_at; an event received before the window is not applied.
- Migration 0010 on a populated table: the rows from before it (source unknown) still stop a
  re-send of their event, through any key, until they are pruned.
- Two sweeps at once (two engines, as two replicas) re-score each due account once."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from alembic import command
from prometheus_client import REGISTRY

from kizashi.runtime.db import raw_transaction
from kizashi.scoring import dedup, repository
from kizashi.scoring.consumer import handle_events
from kizashi.scoring.sweep import SWEEP_BATCH, sweep_once
from kizashi.tools.migrate import alembic_config, upgrade
from tests.integration.scoring_support import (
    account_row,
    event,
    records,
    scoring_service,
    usage,
)
from tests.support.infra import _create_database, _drop_database, _with_database


def _account(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _processed(service, account: str) -> list[tuple[str, str]]:
    async with raw_transaction(service.engine) as connection:
        rows = await connection.fetch(
            "SELECT source, event_id FROM processed_events WHERE account_id = $1 ORDER BY 1, 2",
            account,
        )
    return [(row["source"], row["event_id"]) for row in rows]


async def test_two_accounts_that_use_the_same_event_id_are_both_applied(service) -> None:
    first, second = _account("evt-a"), _account("evt-b")
    now = datetime.now(UTC)
    duplicates = _sample("kizashi_scoring_events_duplicate_total")
    # Same id, two accounts, one batch; then again in a later batch with a second account's
    # retry and a third copy from another ingest key.
    await handle_events(
        service,
        records([usage(first, now, event_id="evt-1"), usage(second, now, event_id="evt-1")]),
    )
    await handle_events(
        service,
        records(
            [
                usage(second, now, event_id="evt-1"),  # a retry: counts once
                usage(second, now, event_id="evt-1", source="crm-sync"),  # another key
            ]
        ),
    )
    assert (await account_row(service, first))["state"]["counts"] == {"product_usage": 1}
    assert (await account_row(service, second))["state"]["counts"] == {"product_usage": 2}
    assert await _processed(service, first) == [("tests", "evt-1")]
    assert await _processed(service, second) == [("crm-sync", "evt-1"), ("tests", "evt-1")]
    assert _sample("kizashi_scoring_events_duplicate_total") == duplicates + 1


async def test_an_event_received_before_the_window_is_not_applied(service) -> None:
    account = _account("expired")
    now = datetime.now(UTC)
    window = service.dedup_window
    assert window == timedelta(days=35)  # KIZASHI_DEDUP_WINDOW_DAYS' default
    expired = _sample("kizashi_scoring_events_expired_total")
    old = now - window - timedelta(hours=1)
    inside = now - window + timedelta(hours=1)
    await handle_events(
        service,
        records(
            [
                # A replay of an old log: its id may have been pruned, so it is not applied.
                usage(account, old, received_at=old, event_id="old-1"),
                # Received inside the window (however old its occurred_at): applied.
                usage(account, old, received_at=inside, event_id="inside-1"),
            ]
        ),
    )
    assert (await account_row(service, account))["state"]["counts"] == {"product_usage": 1}
    assert await _processed(service, account) == [("tests", "inside-1")]
    assert _sample("kizashi_scoring_events_expired_total") == expired + 1


async def test_processed_ids_are_pruned_after_the_window_in_bounded_chunks(service) -> None:
    account = _account("prune")
    now = datetime.now(UTC)
    await handle_events(service, records([usage(account, now, event_id=f"p{i}") for i in range(7)]))
    async with raw_transaction(service.engine) as connection:
        # Five of them applied 36 days ago: past the window.
        await connection.execute(
            "UPDATE processed_events SET applied_at = $2 WHERE account_id = $1 AND event_id < 'p5'",
            account,
            now - timedelta(days=36),
        )
        await connection.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in await connection.fetch(
                "EXPLAIN SELECT source, account_id, event_id FROM processed_events "
                "WHERE applied_at < $1 ORDER BY applied_at LIMIT 10000",
                now,
            )
        )
    assert "processed_events_applied_at" in plan  # no scan of the whole table

    # One chunk is bounded by its limit.
    async with raw_transaction(service.engine) as connection:
        chunk = await repository.prune_processed_events(
            conn=connection, applied_before=now - timedelta(days=35), limit=2
        )
    assert chunk == 2
    assert len(await _processed(service, account)) == 5

    # The periodic task (as the app schedules it), counted by the periodic-task metrics.
    runs = _sample(
        "kizashi_periodic_task_runs_total", service="scoring", task="dedup-prune", outcome="ok"
    )
    pruned = _sample("kizashi_scoring_processed_events_pruned_total")
    service.runtime.every(0.2, lambda: dedup.prune_once(service), name="dedup-prune")
    for _ in range(200):
        if (
            _sample(
                "kizashi_periodic_task_runs_total",
                service="scoring",
                task="dedup-prune",
                outcome="ok",
            )
            > runs
        ):
            break
        await asyncio.sleep(0.05)
    assert await _processed(service, account) == [("tests", "p5"), ("tests", "p6")]
    assert _sample("kizashi_scoring_processed_events_pruned_total") >= pruned + 3
    assert service.legacy_ids is False  # a fresh database has no rows from before 0010


async def test_rows_from_before_0010_still_stop_a_resend_until_pruned(
    database_url, service
) -> None:
    database = f"kizashi_dedup_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, database)
    url = _with_database(database_url, database)
    try:
        config = alembic_config(url)
        await asyncio.to_thread(command.upgrade, config, "0007_scores_listing_indexes")
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                "INSERT INTO processed_events (event_id, account_id, applied_at) "
                "VALUES ('legacy-1', 'acme', now()), "
                "('legacy-2', 'acme', now() - interval '40 days')"
            )
            await asyncio.to_thread(upgrade, url)  # to head, with 0010
            key = await connection.fetch(
                """
                SELECT a.attname FROM pg_index i
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                WHERE i.indrelid = 'processed_events'::regclass AND i.indisprimary
                ORDER BY array_position(i.indkey::int2[], a.attnum)
                """
            )
            assert [row["attname"] for row in key] == ["source", "account_id", "event_id"]
            rows = await connection.fetch(
                "SELECT source, event_id FROM processed_events ORDER BY 2"
            )
            assert [tuple(row) for row in rows] == [("", "legacy-1"), ("", "legacy-2")]

            async with connection.transaction():
                assert await repository.has_legacy_ids(conn=connection)
                applied_before = await repository.claim_new_events(
                    conn=connection,
                    keys=[("api", "acme", "legacy-1"), ("api", "other", "legacy-1")],
                    legacy=True,
                )
            # Applied before 0010 under acme, whatever key it came through; not under other.
            assert applied_before == {("api", "acme", "legacy-1")}

            async with connection.transaction():
                assert (
                    await repository.prune_processed_events(
                        conn=connection,
                        applied_before=datetime.now(UTC) - timedelta(days=35),
                        limit=100,
                    )
                    == 1
                )  # legacy-2, applied 40 days ago
                assert await repository.has_legacy_ids(conn=connection)  # legacy-1 is young

            # Downgrade: an id two accounts used keeps one row (the old key allows one).
            await connection.execute(
                "INSERT INTO processed_events (source, account_id, event_id) "
                "VALUES ('api', 'acme', 'shared'), ('api', 'zeta', 'shared')"
            )
            await asyncio.to_thread(command.downgrade, config, "0007_scores_listing_indexes")
            rows = await connection.fetch(
                "SELECT event_id, account_id FROM processed_events ORDER BY 1"
            )
            assert [row["event_id"] for row in rows] == ["legacy-1", "shared"]
            assert rows[1]["account_id"] in ("acme", "zeta")
            await asyncio.to_thread(upgrade, url)
        finally:
            await connection.close()
    finally:
        await _drop_database(database_url, database)


async def test_two_sweeps_at_once_rescore_each_due_account_once(service, servers) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    accounts = [_account("swept") for _ in range(SWEEP_BATCH + 300)]
    await handle_events(
        service,
        records(
            [
                *[event("account_update", a, now, seats=5) for a in accounts],
                *[usage(a, now - timedelta(days=2), quantity=3.0) for a in accounts],
            ]
        ),
    )
    later = now + timedelta(days=16)
    async with raw_transaction(service.engine) as connection:
        due = await connection.fetchval(
            "SELECT count(*) FROM scores WHERE next_check_at <= $1", later
        )
    assert due >= len(accounts)
    updates = _sample("kizashi_scoring_score_updates_total", cause="sweep")

    # A second replica: its own engine (connections), the same database.
    async with scoring_service(servers) as replica:
        swept = await asyncio.gather(sweep_once(service, now=later), sweep_once(replica, now=later))
    assert sum(swept) == due  # each due account once, not once per replica
    assert _sample("kizashi_scoring_score_updates_total", cause="sweep") == updates + due
    for account in accounts[:: len(accounts) // 20]:
        assert (await account_row(service, account))["computed_at"] == later
    async with raw_transaction(service.engine) as connection:
        assert (
            await connection.fetchval(
                "SELECT count(*) FROM scores WHERE next_check_at <= $1", later
            )
            == 0
        )
