"""Every SQL statement of the console: its own tables (users, user_sessions, api_tokens,
signin_attempts), and read-only queries on the signals and accounts that triggers and scoring
own (architecture §11.2 says why it reads them directly). Keyword-only functions on a
connection the caller holds in a transaction; every value is a bound parameter."""

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


# -- what the console shows: signals and accounts (read-only; owned by triggers, scoring) -------

# The account's owner now (triggers' latest change), else when the signal fired. The same
# expression decides "mine" here and who may act in triggers (kizashi.triggers.repository).
_OWNER = """lower(coalesce(ta.latest -> 'account' ->> 'owner_email',
                           s.payload -> 'account' ->> 'owner_email'))"""
_INBOX_FILTERS = (
    """
    ($1::text IS NULL OR s.kind = $1) AND ($2::text IS NULL OR s.rule = $2)
    AND ($3::text IS NULL OR """
    + _OWNER
    + """ = $3)"""
)


async def inbox(
    *,
    conn: asyncpg.Connection,
    me: str,
    status: str | None,
    kind: str | None,
    rule: str | None,
    owner: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Signals, the caller's first, then by priority, oldest first; `status` None means every
    status that still needs someone (open, acknowledged, snoozed)."""
    return await conn.fetch(
        f"""
        SELECT s.signal_id, s.account_id, s.kind, s.rule, s.priority, s.status,
               s.snoozed_until, s.fired_at, s.status_changed_at, s.status_changed_by,
               s.payload ->> 'headline' AS headline, s.payload -> 'reasons' AS reasons,
               s.payload -> 'account' ->> 'name' AS account_name, {_OWNER} AS owner
        FROM signals s LEFT JOIN trigger_accounts ta ON ta.account_id = s.account_id
        WHERE {_INBOX_FILTERS}
          AND (CASE WHEN $4::text IS NULL THEN s.status <> 'resolved' ELSE s.status = $4 END)
        ORDER BY ({_OWNER} = $5) IS NOT TRUE,
                 array_position(ARRAY['high', 'medium', 'low'], s.priority), s.fired_at,
                 s.signal_id
        LIMIT $6
        """,  # noqa: S608 - constant fragments only
        kind,
        rule,
        owner,
        status,
        me,
        limit,
    )


async def status_counts(
    *, conn: asyncpg.Connection, kind: str | None, rule: str | None, owner: str | None
) -> dict[str, int]:
    rows = await conn.fetch(
        f"""
        SELECT s.status, count(*) AS n
        FROM signals s LEFT JOIN trigger_accounts ta ON ta.account_id = s.account_id
        WHERE {_INBOX_FILTERS} GROUP BY s.status
        """,  # noqa: S608 - constant fragments only
        kind,
        rule,
        owner,
    )
    return {row["status"]: row["n"] for row in rows}


async def signal(*, conn: asyncpg.Connection, signal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        SELECT s.signal_id, s.account_id, s.kind, s.rule, s.priority, s.status,
               s.snoozed_until, s.fired_at, s.payload::text AS payload, {_OWNER} AS owner
        FROM signals s LEFT JOIN trigger_accounts ta ON ta.account_id = s.account_id
        WHERE s.signal_id = $1
        """,  # noqa: S608 - constant fragments only
        signal_id,
    )


async def signal_actions(*, conn: asyncpg.Connection, signal_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT action, actor, at FROM signal_actions WHERE signal_id = $1 ORDER BY id",
        signal_id,
    )


async def account(*, conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT a.account_id, a.facts::text AS facts, sc.cs, sc.op, sc.segment, sc.priority,
               sc.computed_at, sc.breakdown::text AS breakdown
        FROM accounts a LEFT JOIN scores sc ON sc.account_id = a.account_id
        WHERE a.account_id = $1
        """,
        account_id,
    )


async def account_signals(*, conn: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT signal_id, kind, rule, priority, status, fired_at, payload ->> 'headline' AS headline
        FROM signals WHERE account_id = $1 ORDER BY fired_at DESC LIMIT 100
        """,
        account_id,
    )


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
                   {_ARR} AS arr
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
