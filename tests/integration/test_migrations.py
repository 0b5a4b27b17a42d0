"""The Alembic history runs forwards and backwards on a real PostgreSQL: the documents that
scoring and triggers rewrite on every batch are json at head, jsonb before 0004. At head the
schema is the one the services' models declare."""

import asyncio
import re
import uuid

import asyncpg
import orjson
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kizashi.console.models import metadata as console_metadata
from kizashi.ingest.models import metadata as ingest_metadata
from kizashi.notifier.models import metadata as notifier_metadata
from kizashi.runtime.db import create_engine
from kizashi.scoring.models import metadata as scoring_metadata
from kizashi.scoring.repository import listing_sql
from kizashi.tools.migrate import alembic_config, upgrade
from kizashi.triggers.models import metadata as triggers_metadata
from tests.support.infra import _create_database, _drop_database, _with_database

DOCUMENTS = {
    ("accounts", "state"),
    ("scores", "breakdown"),
    ("scores", "features"),
    ("trigger_accounts", "latest"),
    ("trigger_accounts", "cs_history"),
}


async def _types(url: str) -> dict[tuple[str, str], str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            """
            SELECT table_name, column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'public'
            """
        )
    finally:
        await connection.close()
    return {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}


async def test_upgrade_downgrade_upgrade(database_url) -> None:
    database = f"kizashi_migrations_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, database)
    url = _with_database(database_url, database)
    try:
        await asyncio.to_thread(upgrade, url)
        at_head = await _types(url)
        assert {at_head[column] for column in DOCUMENTS} == {"json"}
        assert at_head[("accounts", "facts")] == "jsonb"  # read with ->> by the accounts API
        assert at_head[("scores", "published_cs")] == "double precision"  # 0006

        config = alembic_config(url)
        await asyncio.to_thread(command.downgrade, config, "0003_triggers_next_sweep")
        before = await _types(url)
        assert {before[column] for column in DOCUMENTS} == {"jsonb"}
        assert ("scores", "published_cs") not in before

        await asyncio.to_thread(upgrade, url)
        assert await _types(url) == at_head
    finally:
        await _drop_database(database_url, database)


SCORE_INDEXES = {"scores_cs", "scores_op"}


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_every_list_order_reads_an_index_without_sorting(database_url) -> None:
    """The accounts list pages through an index in every order, unfiltered or by priority
    only (migration 0007): no page sorts the whole scores table. A segment filter has its
    own indexes since 0001."""
    database = f"kizashi_listing_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, database)
    url = _with_database(database_url, database)
    try:
        await asyncio.to_thread(upgrade, url)
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("SET enable_seqscan = off")
            for order in ("cs", "-cs", "op", "-op"):
                for segment, priority in ((None, None), (None, "high")):
                    plan = await connection.fetchval(
                        f"EXPLAIN (FORMAT JSON) {listing_sql(order)}",
                        segment,
                        priority,
                        None,
                        None,
                        51,
                    )
                    nodes = list(_nodes(orjson.loads(plan)[0]["Plan"]))
                    kinds = {node["Node Type"] for node in nodes}
                    indexes = {node.get("Index Name") for node in nodes}
                    assert "Sort" not in kinds, (order, segment, priority, plan)
                    assert indexes & SCORE_INDEXES, (order, segment, priority, plan)
        finally:
            await connection.close()
    finally:
        await _drop_database(database_url, database)


async def test_0007_rebuilds_an_index_an_interrupted_build_left_invalid(database_url) -> None:
    database = f"kizashi_invalid_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, database)
    url = _with_database(database_url, database)
    try:
        await asyncio.to_thread(upgrade, url, "0006_scores_published")
        connection = await asyncpg.connect(url)
        try:
            # What a concurrent build that was cancelled leaves behind.
            await connection.execute("CREATE INDEX scores_op ON scores (op, account_id)")
            await connection.execute(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'scores_op'::regclass"
            )
            await asyncio.to_thread(upgrade, url)
            valid = await connection.fetchval(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'scores_op'::regclass"
            )
            assert valid is True
        finally:
            await connection.close()
    finally:
        await _drop_database(database_url, database)


# Each service's tables, as migrations/env.py hands them to Alembic (its target_metadata).
MODELS = [ingest_metadata, scoring_metadata, triggers_metadata, notifier_metadata, console_metadata]


def _default(sql: str | None) -> str | None:
    """A server default as plain text: `'{}'::jsonb` → `{}`, `'0'` → `0`, `now()` → `now`."""
    return None if sql is None else re.sub(r"::[\w ]+(\[\])?", "", sql).strip("()' ")


def _server_default_differences(connection) -> list:
    # Alembic's own server default check asks the server `SELECT a = b`, and json (the type
    # of several defaulted columns) has no `=`; so they are compared here, as text.
    inspector = inspect(connection)
    differences = []
    for metadata in MODELS:
        for table in metadata.tables.values():
            reflected = {c["name"]: c for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.identity is not None or column.name not in reflected:
                    continue  # compare_metadata reports these
                default = column.server_default
                if default is None:
                    ours = None
                elif isinstance(default.arg, str):
                    ours = default.arg
                else:
                    ours = str(default.arg.compile(dialect=connection.dialect))
                theirs = reflected[column.name]["default"]
                if _default(ours) != _default(theirs):
                    differences.append(("server_default", table.name, column.name, theirs, ours))
    return differences


def _compare(connection) -> list:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False}
    )
    differences = compare_metadata(context, MODELS)
    return differences + _server_default_differences(connection)


async def test_the_migrated_schema_matches_the_models(database_url) -> None:
    """Alembic's autogenerate finds nothing to write: the tables, columns, types, nullability,
    server defaults, indexes and keys the services' models declare are what the migrations
    create, and the migrations create nothing the models leave out."""
    database = f"kizashi_drift_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, database)
    url = _with_database(database_url, database)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                differences = await connection.run_sync(_compare)
        finally:
            await engine.dispose()
    finally:
        await _drop_database(database_url, database)
    assert differences == []
