"""The map, the account page, segments and the account list: scoring's and the notifier's
tables, read-only (architecture §11.2, §11.4)."""

from datetime import datetime

import asyncpg

# -- the map, the account page, segments and the account list (scoring's and notifier's
# tables, read-only) ---------------------------------------------------------------------------

# Whose account: the owner in scoring's facts (the CRM's latest account_update), lower-cased
# like users' emails. Index accounts_owner (migration 0012) serves `= $1`.
_ACCOUNT_OWNER = "lower(a.facts ->> 'owner_email')"
# ARR as a number (ingest takes any JSON for a fact; a string or missing ARR counts as none).
_ARR = "CASE WHEN jsonb_typeof(a.facts -> 'arr') = 'number' THEN (a.facts ->> 'arr')::float8 END"
# The density cell (i, j) of a score on a $2 × $2 lattice ($1 = $2 / 100), as
# charts.density_cell computes it.
_CELLS = """least(greatest(floor(sc.cs * $1::float8), 0), $2::int - 1)::int AS i,
            least(greatest(floor(sc.op * $1::float8), 0), $2::int - 1)::int AS j"""
_MAP_FILTERS = f"""
    ($1::text IS NULL OR {_ACCOUNT_OWNER} = $1) AND ($2::text IS NULL OR sc.segment = $2)
    AND ($3::text IS NULL OR sc.priority = $3)"""


async def map_points(
    *,
    conn: asyncpg.Connection,
    owner: str,
    segment: str | None,
    priority: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """One owner's `limit` most important scored accounts (priority, then ARR, then id: the
    order `charts.map_svg` uses), with what the map draws of each. One statement per
    priority, highest first, until `limit` are found (the owner index finds the accounts).
    Everyone's come from kizashi.console.mapdigest."""
    found: list[asyncpg.Record] = []
    for level in [priority] if priority else ["high", "medium", "low"]:
        found += await conn.fetch(
            f"""
            SELECT sc.account_id, a.facts ->> 'name' AS name, sc.cs, sc.op, sc.priority,
                   sc.segment, {_ARR} AS arr
            FROM scores sc JOIN accounts a ON a.account_id = sc.account_id
            WHERE {_MAP_FILTERS}
            ORDER BY coalesce({_ARR}, 0) DESC, sc.account_id
            LIMIT $4
            """,  # noqa: S608 - constant fragments only
            owner,
            segment,
            level,
            limit - len(found),
        )
        if len(found) >= limit:
            break
    return found


async def map_density(
    *,
    conn: asyncpg.Connection,
    owner: str,
    segment: str | None,
    priority: str | None,
    grid: int,
) -> dict[tuple[int, int], int]:
    """One owner's scored accounts counted per cell of a `grid` × `grid` lattice over CS ×
    OP, with the arithmetic of `charts.density_cell` (so the caller can take its points out).
    Everyone's come from kizashi.console.mapdigest."""
    cells = _CELLS.replace("$1", "$3").replace("$2", "$4")
    filters = "($1::text IS NULL OR sc.segment = $1) AND ($2::text IS NULL OR sc.priority = $2)"
    rows = await conn.fetch(
        f"""
        SELECT {cells}, count(*) AS n
        FROM scores sc JOIN accounts a ON a.account_id = sc.account_id
        WHERE {filters} AND {_ACCOUNT_OWNER} = $5 GROUP BY 1, 2
        """,  # noqa: S608 - constant fragments only
        segment,
        priority,
        grid / 100.0,
        grid,
        owner,
    )
    return {(row["i"], row["j"]): row["n"] for row in rows}


async def map_leaders(*, conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """The first `limit` scored accounts of every (segment, priority) by ARR (then id), with
    what the map draws of each: kizashi.console.mapdigest's points. Reads every account's
    facts: for the background, never for a page."""
    return await conn.fetch(
        f"""
        SELECT segment, priority, account_id, name, cs, op, arr FROM (
            SELECT sc.segment, sc.priority, sc.account_id, a.facts ->> 'name' AS name, sc.cs,
                   sc.op, {_ARR} AS arr,
                   row_number() OVER (PARTITION BY sc.segment, sc.priority
                                      ORDER BY coalesce({_ARR}, 0) DESC, sc.account_id) AS rank
            FROM scores sc JOIN accounts a ON a.account_id = sc.account_id
        ) ranked
        WHERE rank <= $1
        """,  # noqa: S608 - constant fragments only
        limit,
    )


async def map_cells(*, conn: asyncpg.Connection, grid: int) -> list[asyncpg.Record]:
    """Every scored account counted per (segment, priority, cell of a `grid` × `grid` lattice
    over CS × OP), with the arithmetic of `charts.density_cell`: kizashi.console.mapdigest's
    cells. One pass over scores: for the background, never for a page."""
    return await conn.fetch(
        f"""
        SELECT sc.segment, sc.priority, {_CELLS}, count(*) AS n FROM scores sc
        GROUP BY 1, 2, 3, 4
        """,  # noqa: S608 - constant fragments only
        grid / 100.0,
        grid,
    )


async def unscored_count(*, conn: asyncpg.Connection, owner: str | None) -> int:
    """Accounts scoring knows with no score yet (too little data): left off the map."""
    if owner is None:
        return await conn.fetchval(
            "SELECT (SELECT count(*) FROM accounts) - (SELECT count(*) FROM scores)"
        )
    return await conn.fetchval(
        f"""
        SELECT count(*) FROM accounts a
        WHERE {_ACCOUNT_OWNER} = $1
          AND NOT EXISTS (SELECT 1 FROM scores sc WHERE sc.account_id = a.account_id)
        """,  # noqa: S608 - constant fragments only
        owner,
    )


async def positions_then(
    *, conn: asyncpg.Connection, account_ids: list[str], as_of: datetime
) -> dict[str, tuple[float, float]]:
    """Where each of these accounts stood at `as_of` (its last score-history point then): one
    probe of score_history's key per account, as scoring's POSITIONS_SQL does."""
    rows = await conn.fetch(
        """
        SELECT p.account_id, h.cs, h.op FROM unnest($1::text[]) AS p(account_id)
        CROSS JOIN LATERAL (
            SELECT cs, op FROM score_history
            WHERE account_id = p.account_id AND at <= $2
            ORDER BY account_id DESC, at DESC LIMIT 1  -- the key, backwards: never the at index
        ) h
        """,
        account_ids,
        as_of,
    )
    return {row["account_id"]: (row["cs"], row["op"]) for row in rows}


async def account_history(
    *, conn: asyncpg.Connection, account_id: str, since: datetime, limit: int
) -> list[asyncpg.Record]:
    """The account's score-history points since `since`, oldest first (the latest `limit`)."""
    rows = await conn.fetch(
        """
        SELECT at, cs, op, segment, priority FROM score_history
        WHERE account_id = $1 AND at >= $2 ORDER BY at DESC LIMIT $3
        """,
        account_id,
        since,
        limit,
    )
    return rows[::-1]


async def deliveries_of(*, conn: asyncpg.Connection, signal_ids: list[str]) -> list[asyncpg.Record]:
    """Notifier's deliveries of these signals: where each went and how it went."""
    return await conn.fetch(
        """
        SELECT signal_id, channel, receiver, status, attempts, created_at, sent_at, updated_at,
               last_error
        FROM deliveries WHERE signal_id = ANY($1::text[]) ORDER BY created_at, delivery_id
        """,
        signal_ids,
    )


async def customer_emails_of(
    *, conn: asyncpg.Connection, account_id: str, limit: int
) -> list[asyncpg.Record]:
    """Notifier's customer emails to this account's contact (sent or held back), newest
    first, each with when its address unsubscribed, if it did."""
    return await conn.fetch(
        """
        SELECT e.contact_email, e.playbook, e.template, e.status, e.reason, e.created_at,
               e.sent_at, u.unsubscribed_at
        FROM customer_emails e
        LEFT JOIN customer_unsubscribes u ON u.contact_email = e.contact_email
        WHERE e.account_id = $1
        ORDER BY e.created_at DESC, e.delivery_id
        LIMIT $2
        """,
        account_id,
        limit,
    )


async def actions_of(*, conn: asyncpg.Connection, signal_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT signal_id, action, actor, at FROM signal_actions
        WHERE signal_id = ANY($1::text[]) ORDER BY at, id
        """,
        signal_ids,
    )


async def segment_counts(*, conn: asyncpg.Connection, owner: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT sc.segment, sc.priority, count(*) AS n
        FROM scores sc JOIN accounts a ON a.account_id = sc.account_id
        WHERE $1::text IS NULL OR {_ACCOUNT_OWNER} = $1
        GROUP BY 1, 2
        """,  # noqa: S608 - constant fragments only
        owner,
    )


# The segment an account was in at $T: its last score-history point then. Only the accounts
# with a point after $T can be in another segment now (scores holds the last point), so only
# they are probed: the `at` index finds them.
_MOVED = """
    SELECT DISTINCT account_id FROM score_history WHERE at > $1
"""
_SEGMENT_THEN = """(
    SELECT h.segment FROM score_history h
    WHERE h.account_id = sc.account_id AND h.at <= $1
    ORDER BY h.account_id DESC, h.at DESC LIMIT 1
)"""


async def segment_movers(*, conn: asyncpg.Connection, since: datetime) -> list[asyncpg.Record]:
    """(account_id, owner, was, now) of every account whose segment at `since` differs from
    its segment now. Seconds at 100,000 accounts (a probe per account with a point since):
    the console runs it in the background (kizashi.console.moves), never for a page."""
    return await conn.fetch(
        f"""
        SELECT account_id, owner, was, now FROM (
            SELECT sc.account_id, {_ACCOUNT_OWNER} AS owner, {_SEGMENT_THEN} AS was,
                   sc.segment AS now
            FROM ({_MOVED}) m
            JOIN scores sc ON sc.account_id = m.account_id
            JOIN accounts a ON a.account_id = sc.account_id
        ) moves
        WHERE was IS NOT NULL AND was <> now
        """,  # noqa: S608 - constant fragments only
        since,
    )


async def account_list(
    *,
    conn: asyncpg.Connection,
    owner: str | None,
    segment: str | None,
    priority: str | None,
    among: list[str] | None,
    unscored: bool,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page of accounts by id after `after`: those owned by `owner`, in `segment` and at
    `priority` now, among `among` (the movers of kizashi.console.moves), or not scored yet."""
    return await conn.fetch(
        f"""
        SELECT a.account_id, a.facts ->> 'name' AS name, {_ACCOUNT_OWNER} AS owner,
               {_ARR} AS arr, a.facts ->> 'plan' AS plan, a.facts ->> 'renewal_date' AS renewal,
               sc.cs, sc.op, sc.segment, sc.priority, sc.computed_at
        FROM accounts a LEFT JOIN scores sc ON sc.account_id = a.account_id
        WHERE ($1::text IS NULL OR {_ACCOUNT_OWNER} = $1)
          AND ($2::text IS NULL OR sc.segment = $2)
          AND ($3::text IS NULL OR sc.priority = $3)
          AND ($4::text[] IS NULL OR a.account_id = ANY($4::text[]))
          AND (NOT $5 OR sc.account_id IS NULL)
          AND ($6::text IS NULL OR a.account_id > $6)
        ORDER BY a.account_id
        LIMIT $7
        """,  # noqa: S608 - constant fragments only
        owner,
        segment,
        priority,
        among,
        unscored,
        after,
        limit,
    )


async def owners(*, conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """The people who may own accounts, for the owner filter."""
    return await conn.fetch(
        "SELECT email, name FROM users WHERE NOT disabled AND role <> 'admin' ORDER BY name, email"
    )
