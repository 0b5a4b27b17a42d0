"""What the inbox and the signal page show: triggers' signals, their actions, and the
account they belong to (read-only, architecture §11.2)."""

import asyncpg

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
               s.payload -> 'account' ->> 'name' AS account_name, {_OWNER} AS owner,
               s.feedback_useful, s.feedback_reason
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
               s.snoozed_until, s.fired_at, s.payload::text AS payload, {_OWNER} AS owner,
               s.feedback_useful, s.feedback_reason, s.feedback_by, s.feedback_at
        FROM signals s LEFT JOIN trigger_accounts ta ON ta.account_id = s.account_id
        WHERE s.signal_id = $1
        """,  # noqa: S608 - constant fragments only
        signal_id,
    )


async def signal_actions(*, conn: asyncpg.Connection, signal_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT action, actor, at, (detail ->> 'useful')::bool AS useful,
               detail ->> 'reason' AS reason, detail ->> 'channel' AS channel,
               (detail ->> 'months')::int AS months
        FROM signal_actions WHERE signal_id = $1 ORDER BY id
        """,
        signal_id,
    )


async def account(*, conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT a.account_id, a.facts::text AS facts, sc.cs, sc.op, sc.segment, sc.priority,
               sc.computed_at, sc.breakdown::text AS breakdown, sc.phase
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
