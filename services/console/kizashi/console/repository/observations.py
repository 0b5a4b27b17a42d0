"""What reps logged (issue #18): scoring's `observations` table, read-only, for the account
page's timeline and phase panel (architecture §11.5)."""

import asyncpg


async def account_observations(
    *, conn: asyncpg.Connection, account_id: str, limit: int
) -> list[asyncpg.Record]:
    """The account's latest observations, newest first (index observations_account_time)."""
    return await conn.fetch(
        """
        SELECT observation_id, occurred_at, received_at, author, kind, note, fields::text AS fields
        FROM observations WHERE account_id = $1
        ORDER BY occurred_at DESC, observation_id LIMIT $2
        """,
        account_id,
        limit,
    )


async def phase_evidence(*, conn: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    """Every `phase_evidence` observation of the account: what its phase is computed from."""
    return await conn.fetch(
        """
        SELECT fields ->> 'criterion' AS criterion, occurred_at, author
        FROM observations
        WHERE account_id = $1 AND kind = 'phase_evidence' AND fields ? 'criterion'
        """,
        account_id,
    )
