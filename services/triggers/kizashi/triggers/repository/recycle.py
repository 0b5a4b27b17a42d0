"""The recycle list's SQL (kizashi.triggers.recycle, .returns, .recycle_api): a resolution's
reason and entry, the sweep's and the consumer's set-based claims of what returns, the list,
and the opportunity stages the gauges count. Keyword-only functions on a connection the
caller holds in a transaction; every value is a bound parameter."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from kizashi.triggers.recycle import Parked

# The account's owner now (its latest change), else when the signal fired: as signal_owner.
_OWNER = """lower(coalesce(ta.latest -> 'account' ->> 'owner_email',
                           s.payload -> 'account' ->> 'owner_email'))"""


async def lock_for_resolve(*, conn: asyncpg.Connection, signal_id: str) -> asyncpg.Record | None:
    """The signal (locked until the transaction ends) with what parking it needs: its kind,
    account, rule, the account's facts and OP now (its latest change; else as it fired, as
    JSON text), its fiscal year end month (given in the CRM or inferred from its purchases:
    the feature `fiscal_year_end_month`) and its owner. None when there is no such signal."""
    return await conn.fetchrow(
        f"""
        SELECT s.status, s.kind, s.account_id, s.rule,
               coalesce((ta.latest -> 'account')::jsonb, s.payload -> 'account')::text
                   AS account,
               coalesce((ta.latest -> 'after' ->> 'op')::float8,
                        (s.payload -> 'scores' ->> 'op')::float8) AS op,
               coalesce(ta.latest -> 'features' ->> 'fiscal_year_end_month',
                        ta.latest -> 'account' ->> 'fiscal_year_end') AS fiscal_month,
               {_OWNER} AS owner
        FROM signals s LEFT JOIN trigger_accounts ta ON ta.account_id = s.account_id
        WHERE s.signal_id = $1
        FOR UPDATE OF s
        """,  # noqa: S608 - a constant fragment
        signal_id,
    )


async def set_resolution(
    *, conn: asyncpg.Connection, signal_id: str, reason: str | None, months: int | None
) -> None:
    await conn.execute(
        "UPDATE signals SET resolution = $2, resolution_months = $3 WHERE signal_id = $1",
        signal_id,
        reason,
        months,
    )


async def park(
    *,
    conn: asyncpg.Connection,
    signal_id: str,
    account_id: str,
    rule: str,
    parked: Parked,
    set_at: datetime,
    set_by: str,
    owner: str | None,
) -> None:
    """The account's new recycle entry; an older one still waiting is superseded (the rep's
    latest word on the account stands)."""
    await conn.execute(
        """
        UPDATE recycle SET status = 'superseded'
        WHERE account_id = $1 AND status = 'waiting' AND signal_id <> $2
        """,
        account_id,
        signal_id,
    )
    await conn.execute(
        """
        INSERT INTO recycle (signal_id, account_id, rule, reason, months, set_at, set_by, owner,
                             return_to, returns_at, fiscal_year_known, op_at_set, op_target)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (signal_id) DO NOTHING
        """,
        signal_id,
        account_id,
        rule,
        parked.reason,
        parked.months,
        set_at,
        set_by,
        owner,
        parked.return_to,
        parked.returns_at,
        parked.fiscal_year_known,
        parked.op_at_set,
        parked.op_target,
    )


_ENTRY = """r.signal_id, r.account_id, r.rule, r.reason, r.months, r.set_at, r.set_by, r.owner,
            r.return_to, r.returns_at, r.fiscal_year_known, r.op_at_set, r.op_target,
            r.status, r.returned_at"""


async def claim_due(*, conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` waiting entries whose time has come, marked returned in one statement,
    with the account's latest change (JSON text, or NULL) and the parked signal's payload to
    build the returning signal from. Entries another transaction holds are skipped, so two
    replicas' sweeps never return one twice (nor wait on each other)."""
    return await conn.fetch(
        f"""
        WITH due AS (
            SELECT signal_id FROM recycle
            WHERE status = 'waiting' AND returns_at IS NOT NULL AND returns_at <= $1
            ORDER BY returns_at, signal_id LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE recycle r SET status = 'returned', returned_at = $1
        FROM due
        WHERE r.signal_id = due.signal_id AND r.status = 'waiting'
        RETURNING {_ENTRY},
                  (SELECT ta.latest::text FROM trigger_accounts ta
                   WHERE ta.account_id = r.account_id) AS latest,
                  (SELECT s.payload::text FROM signals s
                   WHERE s.signal_id = r.signal_id) AS payload
        """,  # noqa: S608 - a constant column list
        now,
        limit,
    )


async def claim_op_risen(
    *, conn: asyncpg.Connection, ops: dict[str, float], now: datetime
) -> list[asyncpg.Record]:
    """The batch's `no_need` entries whose account's OP (`ops`, the batch's highest per
    account) reached their target, marked returned: one statement per batch, through the
    partial index on waiting no_need entries, whatever the batch's size. `op_now` is the OP
    that returned it."""
    if not ops:
        return []
    ids = sorted(ops)
    return await conn.fetch(
        f"""
        UPDATE recycle r SET status = 'returned', returned_at = $3
        FROM unnest($1::text[], $2::float8[]) AS c(account_id, op)
        WHERE r.account_id = c.account_id AND r.status = 'waiting'
          AND r.op_target IS NOT NULL AND c.op >= r.op_target
        RETURNING {_ENTRY}, c.op AS op_now
        """,  # noqa: S608 - a constant column list
        ids,
        [ops[i] for i in ids],
        now,
    )


# -- GET /v1/recycle -------------------------------------------------------------------------

# The list's order: when it returns, those waiting for an OP rise (no time) last.
SORT_KEY = "coalesce(extract(epoch FROM r.returns_at)::float8, 1e15)"


async def list_entries(
    *,
    conn: asyncpg.Connection,
    owner: str | None,
    reason: str | None,
    status: str | None,
    after: tuple[float, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Entries by when they return, then id; each filter that is None matches everything.
    `owner` matches the owner at the resolution or who it goes back to."""
    return await conn.fetch(
        f"""
        SELECT {_ENTRY}, {SORT_KEY} AS sort_key,
               ta.latest -> 'account' ->> 'name' AS account_name,
               (ta.latest -> 'after' ->> 'op')::float8 AS op_now
        FROM recycle r LEFT JOIN trigger_accounts ta ON ta.account_id = r.account_id
        WHERE ($1::text IS NULL OR r.owner = $1 OR r.return_to = $1)
          AND ($2::text IS NULL OR r.reason = $2) AND ($3::text IS NULL OR r.status = $3)
          AND ($4::float8 IS NULL OR ({SORT_KEY}, r.signal_id) > ($4::float8, $5::text))
        ORDER BY {SORT_KEY}, r.signal_id LIMIT $6
        """,  # noqa: S608 - constant fragments
        owner,
        reason,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


# -- The gauges (kizashi.triggers.performance.refresh_gauges) --------------------------------


async def waiting_per_reason(*, conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT reason, count(*)::int AS n FROM recycle WHERE status = 'waiting' GROUP BY 1"
    )
    return {row["reason"]: row["n"] for row in rows}


async def opportunity_stages(
    *, conn: asyncpg.Connection, since: datetime
) -> Sequence[asyncpg.Record]:
    """Per rule, the opportunities fired since `since`, those a person acted on (an action
    recorded under anyone but Kizashi itself) and those resolved `won`."""
    return await conn.fetch(
        """
        SELECT s.rule, count(*)::int AS fired,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM signal_actions sa
                   WHERE sa.signal_id = s.signal_id AND sa.actor NOT LIKE 'kizashi:%'
               ))::int AS acted_on,
               count(*) FILTER (WHERE s.resolution = 'won')::int AS won
        FROM signals s
        WHERE s.kind = 'opportunity' AND s.fired_at >= $1
        GROUP BY 1
        """,
        since,
    )
