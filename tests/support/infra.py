"""The real servers the tests talk to: PostgreSQL and a Kafka-protocol broker.

PostgreSQL: the server named by KIZASHI_TEST_DATABASE_URL when set (a fresh database is
created on it for the session), else an embedded server in a temporary folder. The broker:
KIZASHI_TEST_KAFKA_BOOTSTRAP_SERVERS when set, else an embedded Tansu on a free port."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from kizashi.tools.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from kizashi.tools.migrate import upgrade


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


@contextmanager
def postgres(workdir: Path) -> Iterator[str]:
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
    server = EmbeddedPostgres(workdir / "pg", free_port(), fsync=False)
    server.start()
    try:
        upgrade(server.url)
        yield server.url
    finally:
        server.stop()


@contextmanager
def broker(workdir: Path) -> Iterator[EmbeddedBroker | str]:
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
