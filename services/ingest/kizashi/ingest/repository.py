"""Every SQL statement of the ingest service: the user → account links it learns from Segment
`identify`/`group` calls (ingest_user_accounts), and which observation authors are users (a
read of `users`), as keyword-only functions on a connection the
caller holds in a transaction (`raw_transaction`). Set-based: one statement per request."""

from collections.abc import Sequence

import asyncpg


async def accounts_of_users(*, conn: asyncpg.Connection, user_ids: Sequence[str]) -> dict[str, str]:
    """user_id → account_id, for those of `user_ids` that have a link."""
    rows = await conn.fetch(
        "SELECT user_id, account_id FROM ingest_user_accounts WHERE user_id = ANY($1::text[])",
        list(user_ids),
    )
    return {row["user_id"]: row["account_id"] for row in rows}


async def save_user_accounts(*, conn: asyncpg.Connection, links: dict[str, str]) -> None:
    """Upsert user → account links; a link that did not change is not rewritten."""
    # Sorted keys: concurrent requests lock rows in one order, so they cannot deadlock.
    users = sorted(links)
    await conn.execute(
        "INSERT INTO ingest_user_accounts (user_id, account_id) "
        "SELECT * FROM unnest($1::text[], $2::text[]) "
        "ON CONFLICT (user_id) DO UPDATE SET account_id = EXCLUDED.account_id, "
        "updated_at = now() "
        "WHERE ingest_user_accounts.account_id IS DISTINCT FROM EXCLUDED.account_id",
        users,
        [links[u] for u in users],
    )


async def known_users(*, conn: asyncpg.Connection, emails: Sequence[str]) -> set[str]:
    """Those of `emails` (lower-case) that are enabled users. Read-only on the console's
    `users` table, as kizashi.runtime.auth reads it: who may author an observation."""
    rows = await conn.fetch(
        "SELECT email FROM users WHERE email = ANY($1::text[]) AND NOT disabled", list(emails)
    )
    return {row["email"] for row in rows}
