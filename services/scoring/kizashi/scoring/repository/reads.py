"""Scoring's read-side SQL: the accounts API, `kizashi rescore`'s paging and the score
history. Keyword-only functions on a connection the caller holds; every value a bound
parameter, the only SQL chosen at run time (ORDER BY) from a fixed table."""

from datetime import datetime
from typing import Literal

import asyncpg
import orjson

# -- The accounts API ----------------------------------------------------------------------

Order = Literal["cs", "-cs", "op", "-op"]
# order → (column, direction, the comparison that continues after a cursor)
ORDER_SQL = {
    "cs": ("cs", "ASC", ">"),
    "-cs": ("cs", "DESC", "<"),
    "op": ("op", "ASC", ">"),
    "-op": ("op", "DESC", "<"),
}


async def get_account(*, conn: asyncpg.Connection, account_id: str) -> dict | None:
    """One account with its scores (None before its first score), JSON columns decoded."""
    row = await conn.fetchrow(
        """
        SELECT a.account_id, a.facts::text AS facts, a.state::text AS state,
               a.created_at, a.updated_at, s.cs, s.op, s.segment, s.priority,
               s.breakdown::text AS breakdown, s.features::text AS features,
               s.config_version, s.computed_at, s.segment_candidate, s.segment_candidate_since
        FROM accounts a LEFT JOIN scores s USING (account_id)
        WHERE a.account_id = $1
        """,
        account_id,
    )
    if row is None:
        return None
    out = dict(row)
    for column in ("facts", "state", "breakdown", "features"):
        out[column] = orjson.loads(out[column]) if out[column] is not None else None
    return out


def listing_sql(order: Order) -> str:
    """One page of the accounts list; parameters: segment, priority, the cursor's value and
    account id (all may be NULL), limit."""
    column, direction, comparison = ORDER_SQL[order]
    return f"""
        SELECT s.account_id, a.facts->>'name' AS name, s.cs, s.op, s.segment, s.priority,
               s.computed_at
        FROM scores s JOIN accounts a USING (account_id)
        WHERE ($1::text IS NULL OR s.segment = $1)
          AND ($2::text IS NULL OR s.priority = $2)
          AND ($3::float8 IS NULL OR (s.{column}, s.account_id) {comparison} ($3, $4::text))
        ORDER BY s.{column} {direction}, s.account_id {direction}
        LIMIT $5
    """  # noqa: S608 - column and direction come from ORDER_SQL, not from the request


async def list_accounts(
    *,
    conn: asyncpg.Connection,
    segment: str | None,
    priority: str | None,
    order: Order,
    after: tuple[float, str] | None,
    limit: int,
) -> list[dict]:
    """Up to `limit` scored accounts in `order`, those after the position `after` (keyset)."""
    rows = await conn.fetch(
        listing_sql(order),
        segment,
        priority,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [dict(row) for row in rows]


async def segment_counts(*, conn: asyncpg.Connection) -> list[dict]:
    """Accounts per (segment, priority)."""
    rows = await conn.fetch(
        """
        SELECT segment, priority, count(*) AS accounts
        FROM scores GROUP BY segment, priority ORDER BY segment, priority
        """
    )
    return [dict(row) for row in rows]


async def segment_sizes(*, conn: asyncpg.Connection) -> dict[str, int]:
    """Accounts per segment, for the gauge (segments with no account are absent)."""
    rows = await conn.fetch("SELECT segment, count(*) AS accounts FROM scores GROUP BY 1")
    return {row["segment"]: row["accounts"] for row in rows}


# -- `kizashi rescore` ---------------------------------------------------------------------


async def count_accounts(*, conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM accounts")


async def account_ids_after(*, conn: asyncpg.Connection, after: str, limit: int) -> list[str]:
    """The next `limit` account ids after `after`, by keyset (no OFFSET: a walk over every
    account stays linear)."""
    rows = await conn.fetch(
        """
        SELECT account_id FROM accounts WHERE account_id > $1
        ORDER BY account_id LIMIT $2
        """,
        after,
        limit,
    )
    return [row["account_id"] for row in rows]


# -- Score history -------------------------------------------------------------------------


async def account_exists(*, conn: asyncpg.Connection, account_id: str) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)", account_id
    )


async def score_history(
    *, conn: asyncpg.Connection, account_id: str, since: datetime, until: datetime, limit: int
) -> list[dict]:
    """The account's points in [since, until], the latest `limit` of them, oldest first
    (a backward read of the primary key)."""
    rows = await conn.fetch(
        """
        SELECT at, cs, op, segment, priority FROM score_history
        WHERE account_id = $1 AND at >= $2 AND at <= $3
        ORDER BY at DESC LIMIT $4
        """,
        account_id,
        since,
        until,
        limit,
    )
    return [dict(row) for row in reversed(rows)]


# Parameters: as of, the account id to continue after (or NULL), limit.
POSITIONS_SQL = """
        SELECT s.account_id, h.at, h.cs, h.op, h.segment, h.priority
        FROM scores s
        CROSS JOIN LATERAL (
            SELECT at, cs, op, segment, priority FROM score_history
            WHERE account_id = s.account_id AND at <= $1
            ORDER BY at DESC LIMIT 1
        ) h
        WHERE $2::text IS NULL OR s.account_id > $2
        ORDER BY s.account_id
        LIMIT $3
        """


async def positions_at(
    *, conn: asyncpg.Connection, as_of: datetime, after: str | None, limit: int
) -> list[dict]:
    """Each scored account's last point at or before `as_of` (accounts with none are left
    out), by account id after `after`, at most `limit`. One statement: the scores' key walks
    the accounts in order, and each takes one probe of score_history's key (a LATERAL
    LIMIT 1), so the cost follows the accounts read, not the history kept; a DISTINCT ON
    would read every point older than `as_of`."""
    rows = await conn.fetch(
        POSITIONS_SQL,
        as_of,
        after,
        limit,
    )
    return [dict(row) for row in rows]


async def prune_history(*, conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to `limit` points older than `before` (through the `at` index); how many."""
    status = await conn.execute(
        """
        DELETE FROM score_history WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM score_history WHERE at < $1 LIMIT $2
        ))
        """,
        before,
        limit,
    )
    return int(status.split()[-1])
