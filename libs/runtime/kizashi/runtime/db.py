"""The SQLAlchemy async engine (asyncpg) and the helpers every service uses with it."""

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from kizashi.runtime.metrics import DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS
from kizashi.runtime.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATEs worth retrying: serialization failure, deadlock (architecture §5.9), connection
# exceptions.
RETRYABLE_SQLSTATES = {"40001", "40P01", "08000", "08003", "08006", "57P01", "57P02", "57P03"}


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs from users and hand SQLAlchemy the asyncpg dialect."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("KIZASHI_DATABASE_URL must be a postgresql:// URL")


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def is_transient(error: BaseException) -> bool:
    """Errors that mean "the database is away or busy", not "this data is bad"."""
    if isinstance(error, OperationalError | InterfaceError | ConnectionError | OSError):
        return True
    # A raw asyncpg connection lost mid-transaction (PostgreSQL restarted) raises asyncpg's own
    # InterfaceError ("... the underlying connection is closed"), not SQLAlchemy's. Other
    # InterfaceErrors are misuse (a bug), which retrying would only repeat.
    if isinstance(error, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    if isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error):
        return True
    # Statements on the raw asyncpg connection (raw_transaction) raise asyncpg's own errors,
    # not SQLAlchemy's wrappers: a deadlock there is asyncpg's DeadlockDetectedError.
    if isinstance(error, asyncpg.PostgresError):  # connection errors carry class 08 states
        return error.sqlstate in RETRYABLE_SQLSTATES
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(
            getattr(error.orig, "__cause__", None), "sqlstate", None
        )
        return sqlstate in RETRYABLE_SQLSTATES
    return False


async def retry_transient(
    operation: Callable[[], Awaitable[T]], *, attempts: int = 5, first_delay: float = 0.05
) -> T:
    """Run a transaction again on deadlock or serialization failure (architecture §5.9): the shared
    RetryPolicy, waiting first_delay, then twice as long each time (no jitter, no cap)."""
    policy = RetryPolicy(max_attempts=attempts, base=first_delay, cap=math.inf, jitter=False)
    return await policy.run(operation, retry_if=_retryable, on_retry=_log_retry)


def _retryable(error: BaseException) -> bool:
    transaction_error = (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
    return isinstance(error, transaction_error) and is_transient(error)


def _log_retry(attempt: int, error: BaseException, delay: float) -> None:
    cause = getattr(error, "orig", None) or error
    log.warning("transient database error, retrying: %s", type(cause).__name__)


async def database_ready(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(2):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        return True
    except Exception:  # readiness answers "no", whatever the reason
        return False


def record_pool_metrics(engine: AsyncEngine, service: str) -> None:
    pool = engine.pool
    checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
    idle = pool.checkedin() if hasattr(pool, "checkedin") else 0
    DB_POOL_CONNECTIONS.labels(service, "in_use").set(checked_out)
    DB_POOL_CONNECTIONS.labels(service, "idle").set(idle)
    if hasattr(pool, "size"):
        # QueuePool keeps its overflow limit private; pool_size + max_overflow is the ceiling.
        DB_POOL_MAX_CONNECTIONS.labels(service).set(pool.size() + getattr(pool, "_max_overflow", 0))


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on the pool's asyncpg connection, for set-based statements on hot paths
    (arrays through `unnest`, parameters always bound). Commits when the block ends cleanly."""
    # SQLAlchemy's asyncpg adapter only sends BEGIN before a statement of its own, and none is
    # run here: without asyncpg's own transaction each statement would commit by itself.
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
        async with driver.transaction():
            yield driver
