"""Which database errors a consumer retries (the batch waits) and which it treats as the
record's fault (dead-letter): a connection lost under a raw asyncpg transaction is the former."""

import asyncpg
from sqlalchemy.exc import OperationalError

from kizashi.runtime.db import is_transient


def test_a_connection_closed_under_a_raw_transaction_is_transient() -> None:
    # The exact error asyncpg raised in the fault suite when PostgreSQL restarted mid-batch.
    closed = asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    )
    assert is_transient(closed)
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert is_transient(OperationalError("SELECT 1", {}, ConnectionRefusedError()))


def test_misuse_and_bad_data_are_not_transient() -> None:
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert not is_transient(busy)
    assert not is_transient(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert not is_transient(ValueError("bad record"))
