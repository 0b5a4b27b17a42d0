"""The managers' KPIs (issue #18), per rep: one set-based statement per figure, each grouped
by rep, over scoring's and triggers' tables (read-only). A rep is an account's owner (the
lower-cased `owner_email` fact, as everywhere in the console) or, for the observations
logged, the observation's author. `$1` is one rep's email, or NULL for everyone; the period is
[`$2`, `$3`)."""

from datetime import datetime

import asyncpg

_OWNER = "lower(a.facts ->> 'owner_email')"
_OWNED = f"coalesce({_OWNER}, '') <> '' AND ($1::text IS NULL OR {_OWNER} = $1)"


async def accounts_per_phase(
    *, conn: asyncpg.Connection, owner: str | None
) -> list[asyncpg.Record]:
    """Owned accounts by their phase now (`scores.phase`; an account not scored yet is 0)."""
    return await conn.fetch(
        f"""
        SELECT {_OWNER} AS rep, coalesce(sc.phase, 0)::int AS phase, count(*)::int AS n
        FROM accounts a LEFT JOIN scores sc ON sc.account_id = a.account_id
        WHERE {_OWNED} GROUP BY 1, 2
        """,  # noqa: S608 - constant fragments only
        owner,
    )


async def phase_moves(
    *, conn: asyncpg.Connection, owner: str | None, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Phase changes of owned accounts in the period: up and down."""
    return await conn.fetch(
        f"""
        SELECT {_OWNER} AS rep,
               count(*) FILTER (WHERE pc.to_phase > pc.from_phase)::int AS up,
               count(*) FILTER (WHERE pc.to_phase < pc.from_phase)::int AS down
        FROM phase_changes pc JOIN accounts a ON a.account_id = pc.account_id
        WHERE {_OWNED} AND pc.at >= $2 AND pc.at < $3 GROUP BY 1
        """,  # noqa: S608 - constant fragments only
        owner,
        start,
        end,
    )


async def phase_stays(
    *, conn: asyncpg.Connection, owner: str | None, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """The median time spent in each phase, over the stays that ended in the period: a stay
    in phase p starts at a change to p and ends at the account's next change."""
    return await conn.fetch(
        f"""
        WITH owned AS (
            SELECT a.account_id, {_OWNER} AS rep FROM accounts a WHERE {_OWNED}
        ), stays AS (
            SELECT o.rep, pc.to_phase AS phase, pc.at AS entered,
                   lead(pc.at) OVER (PARTITION BY pc.account_id ORDER BY pc.at) AS left_at
            FROM phase_changes pc JOIN owned o ON o.account_id = pc.account_id
        )
        SELECT rep, phase::int AS phase, count(*)::int AS stays,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM left_at - entered)) AS median_s
        FROM stays WHERE left_at >= $2 AND left_at < $3 GROUP BY 1, 2
        """,  # noqa: S608 - constant fragments only
        owner,
        start,
        end,
    )


async def observations_logged(
    *, conn: asyncpg.Connection, author: str | None, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Observations each person logged (received) in the period."""
    return await conn.fetch(
        """
        SELECT lower(author) AS rep, count(*)::int AS n FROM observations
        WHERE ($1::text IS NULL OR lower(author) = $1) AND received_at >= $2 AND received_at < $3
        GROUP BY 1
        """,
        author,
        start,
        end,
    )


async def signals_acted(
    *, conn: asyncpg.Connection, owner: str | None, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Signals fired in the period on owned accounts, those a person acted on (an action by
    anyone but Kizashi itself: not `kizashi:auto-resolve` or `kizashi:snooze-ended`), and the
    time from firing to the first such action (p50, p90; PostgreSQL's percentile_cont)."""
    return await conn.fetch(
        f"""
        WITH fired AS (
            SELECT s.signal_id, s.fired_at, {_OWNER} AS rep
            FROM signals s JOIN accounts a ON a.account_id = s.account_id
            WHERE {_OWNED} AND s.fired_at >= $2 AND s.fired_at < $3
        ), waits AS (
            SELECT f.rep, f.signal_id,
                   extract(epoch FROM min(sa.at) - f.fired_at) AS wait_s
            FROM fired f LEFT JOIN signal_actions sa
              ON sa.signal_id = f.signal_id AND sa.actor NOT LIKE 'kizashi:%'
            GROUP BY f.rep, f.signal_id, f.fired_at
        )
        SELECT rep, count(*)::int AS fired, count(wait_s)::int AS acted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_s) AS p50_s,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_s) AS p90_s
        FROM waits GROUP BY 1
        """,  # noqa: S608 - constant fragments only
        owner,
        start,
        end,
    )


async def coverage(
    *, conn: asyncpg.Connection, owner: str | None, as_of: datetime, days: int
) -> list[asyncpg.Record]:
    """Owned accounts, and those with no observation (by anyone) in the `days` up to `as_of`."""
    return await conn.fetch(
        f"""
        SELECT {_OWNER} AS rep, count(*)::int AS owned,
               count(*) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM observations o
                   WHERE o.account_id = a.account_id
                     AND o.occurred_at > $2::timestamptz - make_interval(days => $3::int)
                     AND o.occurred_at <= $2::timestamptz
               ))::int AS without
        FROM accounts a WHERE {_OWNED} GROUP BY 1
        """,  # noqa: S608 - constant fragments only
        owner,
        as_of,
        days,
    )


async def opportunity_stages(
    *, conn: asyncpg.Connection, owner: str | None, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Opportunities fired in the period, by rule and rep (NULL: nobody owns the account),
    with how far each went: acted on (an action by a person, as `signals_acted` counts it)
    and won (resolved with reason `won`)."""
    return await conn.fetch(
        f"""
        SELECT s.rule, nullif({_OWNER}, '') AS rep, count(*)::int AS signals,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM signal_actions sa
                   WHERE sa.signal_id = s.signal_id AND sa.actor NOT LIKE 'kizashi:%'
               ))::int AS acted_on,
               count(*) FILTER (WHERE s.resolution = 'won')::int AS won
        FROM signals s LEFT JOIN accounts a ON a.account_id = s.account_id
        WHERE s.kind = 'opportunity' AND s.fired_at >= $2 AND s.fired_at < $3
          AND ($1::text IS NULL OR {_OWNER} = $1)
        GROUP BY 1, 2
        """,  # noqa: S608 - constant fragments only
        owner,
        start,
        end,
    )


async def recycle_waiting(*, conn: asyncpg.Connection, owner: str | None) -> dict[str, int]:
    """Accounts waiting on the recycle list now, by reason; a rep's are those they owned at
    the resolution or that go back to them (as GET /v1/recycle's owner filter)."""
    rows = await conn.fetch(
        """
        SELECT reason, count(*)::int AS n FROM recycle
        WHERE status = 'waiting' AND ($1::text IS NULL OR owner = $1 OR return_to = $1)
        GROUP BY 1
        """,
        owner,
    )
    return {row["reason"]: row["n"] for row in rows}
