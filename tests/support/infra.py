"""The real servers the tests talk to: PostgreSQL and a Kafka-protocol broker.

PostgreSQL: the server named by KIZASHI_TEST_DATABASE_URL when set (a fresh database is
created on it for the session), else an embedded server in a temporary folder. The broker, of
one of two flavours: "embedded", KIZASHI_TEST_KAFKA_BOOTSTRAP_SERVERS when set, else an
embedded Tansu on a free port; "kafka", a three-node Apache Kafka cluster (KafkaCluster).

Which flavours a run uses: KIZASHI_TEST_BROKER=embedded|kafka|both (default both). The
end-to-end and fault suites run once per flavour; every other test on the embedded broker."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from kizashi.tools.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from kizashi.tools.migrate import upgrade
from tests.support.kafka_cluster import KafkaCluster, KafkaUnavailable, kafka_lib, kafka_version

FLAVOURS = ("embedded", "kafka")
Broker = EmbeddedBroker | KafkaCluster


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _create_database(server_url: str, database: str) -> None:
    connection = await asyncpg.connect(_with_database(server_url, "postgres"))
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


async def _drop_database(server_url: str, database: str) -> None:
    connection = await asyncpg.connect(_with_database(server_url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_database(database_url: str, prefix: str, *, migrated: bool = True):
    """A database of its own on the session's PostgreSQL server, dropped afterwards; its URL.

    For tests whose rows another consumer of the shared database must never see (the shared
    stack's notifier polls every pending delivery; its sweeps re-score every due account)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await _create_database(database_url, name)
    url = _with_database(database_url, name)
    try:
        if migrated:
            await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await _drop_database(database_url, name)


@contextmanager
def postgres(workdir: Path, name: str = "pg") -> Iterator[str]:
    """A migrated, empty database for this session; its URL."""
    external = os.environ.get("KIZASHI_TEST_DATABASE_URL")
    if external:
        database = f"kizashi_test_{uuid.uuid4().hex[:10]}"
        asyncio.run(_create_database(external, database))
        url = _with_database(external, database)
        try:
            upgrade(url)
            yield url
        finally:
            asyncio.run(_drop_database(external, database))
        return
    server = EmbeddedPostgres(workdir / name, free_port(), fsync=False)
    server.start()
    try:
        upgrade(server.url)
        yield server.url
    finally:
        server.stop()


def broker_flavours() -> list[str]:
    """The flavours KIZASHI_TEST_BROKER asks for (default both), in order."""
    wanted = os.environ.get("KIZASHI_TEST_BROKER", "both").strip().lower() or "both"
    if wanted == "both":
        return list(FLAVOURS)
    if wanted not in FLAVOURS:
        raise pytest.UsageError(f"KIZASHI_TEST_BROKER={wanted!r}: say embedded, kafka or both")
    return [wanted]


def kafka_missing() -> str | None:
    """Why the Apache Kafka runs cannot happen here, or None when they can."""
    try:
        kafka_lib()
    except KafkaUnavailable as error:
        return str(error)
    return None


def kafka_skip_reason(why: str) -> str:
    return f"Apache Kafka runs SKIPPED: {why}"


def new_broker(workdir: Path, flavour: str) -> Broker:
    """A broker of this flavour, not started yet (pytest.skip when Kafka is not installed)."""
    if flavour == "kafka":
        try:
            return KafkaCluster(workdir / "kafka")
        except KafkaUnavailable as error:
            pytest.skip(kafka_skip_reason(str(error)))
    return EmbeddedBroker(workdir / "broker", free_port())


def close_broker(server: Broker) -> None:
    if isinstance(server, KafkaCluster):
        server.close()
    else:
        server.stop()


def describe_kafka() -> str:
    return f"Apache Kafka {kafka_version()}, three KRaft nodes"


@contextmanager
def broker(workdir: Path, flavour: str = "embedded") -> Iterator[Broker | str]:
    if flavour == "kafka":
        cluster = new_broker(workdir, "kafka")
        try:
            cluster.start()
            yield cluster
        finally:
            close_broker(cluster)
        return
    external = os.environ.get("KIZASHI_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    server = EmbeddedBroker(workdir / "broker", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
