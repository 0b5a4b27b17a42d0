"""The console's own tables: users, user_sessions, api_tokens, signin_attempts."""

from datetime import datetime

import asyncpg

# -- users -------------------------------------------------------------------------------------

_USER = "id, email, name, slack, role, disabled, created_at"


async def add_user(
    *,
    conn: asyncpg.Connection,
    email: str,
    name: str,
    slack: str | None,
    role: str,
    password_hash: str,
) -> asyncpg.Record | None:
    """The new user, or None when the email is taken."""
    return await conn.fetchrow(
        f"""
        INSERT INTO users (email, name, slack, role, password_hash) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (email) DO NOTHING RETURNING {_USER}
        """,  # noqa: S608 - a constant column list
        email,
        name,
        slack,
        role,
        password_hash,
    )


async def list_users(*, conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_USER} FROM users ORDER BY email")  # noqa: S608


async def count_users(*, conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM users")


async def user_for_signin(*, conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_USER}, password_hash FROM users WHERE email = $1",  # noqa: S608
        email,
    )


async def set_password(*, conn: asyncpg.Connection, email: str, password_hash: str) -> bool:
    """Also ends the user's sessions: whoever knew the old password is signed out."""
    user_id = await conn.fetchval(
        "UPDATE users SET password_hash = $2 WHERE email = $1 RETURNING id", email, password_hash
    )
    if user_id is not None:
        await conn.execute("DELETE FROM user_sessions WHERE user_id = $1", user_id)
    return user_id is not None


async def rehash_password(*, conn: asyncpg.Connection, user_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def disable_user(*, conn: asyncpg.Connection, email: str) -> bool:
    """Disabled at once: its sessions are deleted, and its tokens fail the auth join."""
    user_id = await conn.fetchval(
        "UPDATE users SET disabled = true WHERE email = $1 RETURNING id", email
    )
    if user_id is not None:
        await conn.execute("DELETE FROM user_sessions WHERE user_id = $1", user_id)
    return user_id is not None


# -- sessions ----------------------------------------------------------------------------------


async def create_session(
    *,
    conn: asyncpg.Connection,
    session_hash: str,
    user_id: int,
    csrf_token: str,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO user_sessions (id, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)
        """,
        session_hash,
        user_id,
        csrf_token,
        expires_at,
    )


async def session_user(
    *, conn: asyncpg.Connection, session_hash: str, now: datetime
) -> asyncpg.Record | None:
    """The session's user and CSRF token, if the session is current and the user enabled."""
    return await conn.fetchrow(
        """
        SELECT u.id, u.email, u.name, u.slack, u.role, s.csrf_token FROM user_sessions s
        JOIN users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.expires_at > $2 AND NOT u.disabled
        """,
        session_hash,
        now,
    )


async def delete_session(*, conn: asyncpg.Connection, session_hash: str) -> None:
    await conn.execute("DELETE FROM user_sessions WHERE id = $1", session_hash)


async def delete_expired_sessions(*, conn: asyncpg.Connection, now: datetime) -> int:
    result = await conn.execute("DELETE FROM user_sessions WHERE expires_at <= $1", now)
    return int(result.split()[-1])


# -- API tokens --------------------------------------------------------------------------------


async def add_token(
    *, conn: asyncpg.Connection, user_id: int, name: str, token_hash: str, prefix: str
) -> int:
    return await conn.fetchval(
        """
        INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, $2, $3, $4)
        RETURNING id
        """,
        user_id,
        name,
        token_hash,
        prefix,
    )


async def list_tokens(*, conn: asyncpg.Connection, user_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT id, name, prefix, created_at, revoked_at FROM api_tokens WHERE user_id = $1
        ORDER BY revoked_at IS NOT NULL, created_at DESC
        """,
        user_id,
    )


async def revoke_token(
    *, conn: asyncpg.Connection, user_id: int, token_id: int, now: datetime
) -> bool:
    """Only the owner's own token; revoking twice keeps the first time."""
    status = await conn.execute(
        """
        UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3)
        WHERE id = $1 AND user_id = $2
        """,
        token_id,
        user_id,
        now,
    )
    return status.endswith(" 1")


# -- failed sign-ins (kizashi.console.security) -------------------------------------------------


async def blocked_until(
    *, conn: asyncpg.Connection, keys: list[str], now: datetime
) -> datetime | None:
    return await conn.fetchval(
        "SELECT max(blocked_until) FROM signin_attempts WHERE key = ANY($1::text[]) "
        "AND blocked_until > $2",
        keys,
        now,
    )


async def record_failure(
    *, conn: asyncpg.Connection, key: str, now: datetime, forget_before: datetime
) -> int:
    """Count one more failure for `key` (starting afresh after a quiet spell); the count."""
    return await conn.fetchval(
        """
        INSERT INTO signin_attempts AS a (key, failures, last_failure_at) VALUES ($1, 1, $2)
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN a.last_failure_at < $3 THEN 1 ELSE a.failures + 1 END,
            last_failure_at = $2
        RETURNING failures
        """,
        key,
        now,
        forget_before,
    )


async def block(*, conn: asyncpg.Connection, key: str, until: datetime) -> None:
    await conn.execute("UPDATE signin_attempts SET blocked_until = $2 WHERE key = $1", key, until)


async def clear_failures(*, conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("DELETE FROM signin_attempts WHERE key = $1", key)
