"""Reads behind the accounts API. ORDER BY directions come from a fixed table, never from
the request; every value is a bound parameter."""

import base64
import math
from typing import Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.runtime.db import raw_transaction

Order = Literal["cs", "-cs", "op", "-op"]
_ORDER_SQL = {
    "cs": ("cs", "ASC", ">"),
    "-cs": ("cs", "DESC", "<"),
    "op": ("op", "ASC", ">"),
    "-op": ("op", "DESC", "<"),
}


class BadCursor(ValueError):
    pass


def encode_cursor(listing: list[str | None], value: float, account_id: str) -> str:
    """The position after (value, account_id) in the listing `[order, segment, priority]`."""
    data = orjson.dumps([*listing, value, account_id])
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, listing: list[str | None]) -> tuple[float, str]:
    """The position a cursor holds, if it was made for this very listing: a cursor of another
    order or filter would silently skip or repeat accounts."""
    try:
        *made_for, value, account_id = orjson.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        value, account_id = float(value), str(account_id)
    except Exception as error:
        raise BadCursor("cursor is not one this API returned") from error
    if "\x00" in account_id or not math.isfinite(value):
        raise BadCursor("cursor is not one this API returned")
    if made_for != listing:
        raise BadCursor(
            "cursor belongs to another order, segment or priority: "
            "repeat that request's parameters, or start again without a cursor"
        )
    return value, account_id


async def get_account(engine: AsyncEngine, account_id: str) -> dict | None:
    async with raw_transaction(engine) as connection:
        row = await connection.fetchrow(
            """
            SELECT a.account_id, a.facts::text AS facts, a.state::text AS state,
                   a.created_at, a.updated_at, s.cs, s.op, s.segment, s.priority,
                   s.breakdown::text AS breakdown, s.features::text AS features,
                   s.config_version, s.computed_at
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
    column, direction, comparison = _ORDER_SQL[order]
    return f"""
        SELECT s.account_id, a.facts->>'name' AS name, s.cs, s.op, s.segment, s.priority,
               s.computed_at
        FROM scores s JOIN accounts a USING (account_id)
        WHERE ($1::text IS NULL OR s.segment = $1)
          AND ($2::text IS NULL OR s.priority = $2)
          AND ($3::float8 IS NULL OR (s.{column}, s.account_id) {comparison} ($3, $4::text))
        ORDER BY s.{column} {direction}, s.account_id {direction}
        LIMIT $5
    """  # noqa: S608 - column and direction come from _ORDER_SQL, not from the request


async def list_accounts(
    engine: AsyncEngine,
    *,
    segment: str | None,
    priority: str | None,
    order: Order,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict], str | None]:
    column = _ORDER_SQL[order][0]
    listing = [order, segment, priority]
    after = decode_cursor(cursor, listing) if cursor else None
    async with raw_transaction(engine) as connection:
        rows = await connection.fetch(
            listing_sql(order),
            segment,
            priority,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    items = [dict(row) for row in rows[:limit]]
    next_cursor = (
        encode_cursor(listing, items[-1][column], items[-1]["account_id"])
        if len(rows) > limit
        else None
    )
    return items, next_cursor


async def segment_counts(engine: AsyncEngine) -> list[dict]:
    async with raw_transaction(engine) as connection:
        rows = await connection.fetch(
            """
            SELECT segment, priority, count(*) AS accounts
            FROM scores GROUP BY segment, priority ORDER BY segment, priority
            """
        )
    return [dict(row) for row in rows]
