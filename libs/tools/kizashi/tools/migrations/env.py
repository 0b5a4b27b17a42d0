"""Alembic environment: one migration history for the schema the services share.

Each service owns its tables (its own `models.py`); this history creates them all, so a single
one-shot `kizashi migrate` prepares a database for every service.
"""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from kizashi.console.models import metadata as console_metadata
from kizashi.ingest.models import metadata as ingest_metadata
from kizashi.notifier.models import metadata as notifier_metadata
from kizashi.runtime.db import async_url
from kizashi.scoring.models import metadata as scoring_metadata
from kizashi.triggers.models import metadata as triggers_metadata

config = context.config
target_metadata = [
    ingest_metadata,
    scoring_metadata,
    triggers_metadata,
    notifier_metadata,
    console_metadata,
]


def run_migrations_offline() -> None:
    context.configure(
        url=async_url(config.get_main_option("sqlalchemy.url")),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = async_url(config.get_main_option("sqlalchemy.url"))
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
