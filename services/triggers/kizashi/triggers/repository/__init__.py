"""Every SQL statement of the triggers service (trigger_accounts, rule_states, signals,
signal_actions, outcomes), as keyword-only functions on a connection the caller holds in a
transaction (`raw_transaction`). A rule's record and outcomes live in `.performance`.

The consumer's and the sweep's writes are set-based: one statement per batch through `unnest`,
keys sorted so that concurrent batches lock rows in one order. Every value is a bound
parameter; the column lists spliced into the text are constants."""

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg
import orjson

from kizashi.triggers.engine import RuleState

ACTIVE_STATUSES = ["open", "acknowledged", "snoozed"]


_MEMORY_COLUMNS = """account_id, cs_history::text AS cs_history, fired_day, fired_today,
                     next_sweep_at"""
_ACCOUNT_COLUMNS = f"{_MEMORY_COLUMNS}, latest::text AS latest"


def _memory_rows(rows: Iterable[asyncpg.Record]) -> dict[str, dict]:
    return {
        row["account_id"]: {
            "latest": None if (latest := row.get("latest")) is None else orjson.loads(latest),
            "cs_history": orjson.loads(row["cs_history"]),
            "fired_day": row["fired_day"],
            "fired_today": row["fired_today"],
            "next_sweep_at": row["next_sweep_at"],
        }
        for row in rows
    }


async def lock_accounts(*, conn: asyncpg.Connection, account_ids: Iterable[str]) -> dict:
    """The consumer's accounts, locked, without `latest`: the consumer replaces it with the
    change it decides on and never reads the old one (a few kB per account to ship and parse;
    the sweep, which does read it, uses `lock_due_accounts`)."""
    rows = await conn.fetch(
        f"""
        SELECT {_MEMORY_COLUMNS}
        FROM trigger_accounts WHERE account_id = ANY($1::text[])
        ORDER BY account_id FOR UPDATE
        """,  # noqa: S608 - a constant column list
        sorted(set(account_ids)),
    )
    return _memory_rows(rows)


async def lock_due_accounts(*, conn: asyncpg.Connection, now: datetime, limit: int) -> dict:
    """Up to `limit` accounts whose sweep time has come, locked. Rows the consumer holds are
    skipped (it is evaluating them anyway), so the sweep never waits on it nor deadlocks."""
    rows = await conn.fetch(
        f"""
        SELECT {_ACCOUNT_COLUMNS}
        FROM trigger_accounts WHERE next_sweep_at <= $1
        ORDER BY next_sweep_at LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,  # noqa: S608 - a constant column list
        now,
        limit,
    )
    return _memory_rows(rows)


async def load_rule_states(
    *, conn: asyncpg.Connection, account_ids: Iterable[str]
) -> dict[str, dict[str, RuleState]]:
    rows = await conn.fetch(
        """
        SELECT account_id, rule, armed, episode, last_fired_at, condition_since,
               cleared_since, last_value
        FROM rule_states WHERE account_id = ANY($1::text[])
        """,
        sorted(set(account_ids)),
    )
    states: dict[str, dict[str, RuleState]] = {}
    for row in rows:
        # Every rule of every account of the batch: the fields set directly, as
        # RuleState.but does (the dataclass __init__ and dict(row) took 7 % of the consumer).
        state = object.__new__(RuleState)
        state.__dict__.update(
            armed=row[2],
            episode=row[3],
            last_fired_at=row[4],
            condition_since=row[5],
            cleared_since=row[6],
            last_value=row[7],
        )
        states.setdefault(row[0], {})[row[1]] = state
    return states


async def save_accounts(*, conn: asyncpg.Connection, accounts: dict[str, dict]) -> None:
    ids = sorted(accounts)
    if not ids:
        return
    await conn.execute(
        """
        INSERT INTO trigger_accounts (account_id, latest, cs_history, fired_day, fired_today,
                                      next_sweep_at, updated_at)
        SELECT id, latest::json, history::json, day, fired, sweep_at, now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::int[],
                    $6::timestamptz[])
             AS u(id, latest, history, day, fired, sweep_at)
        ON CONFLICT (account_id) DO UPDATE
        SET latest = EXCLUDED.latest, cs_history = EXCLUDED.cs_history,
            fired_day = EXCLUDED.fired_day, fired_today = EXCLUDED.fired_today,
            next_sweep_at = EXCLUDED.next_sweep_at, updated_at = now()
        """,
        ids,
        [orjson.dumps(accounts[i]["latest"]).decode() for i in ids],
        [orjson.dumps(accounts[i]["cs_history"]).decode() for i in ids],
        [accounts[i]["fired_day"] for i in ids],
        [accounts[i]["fired_today"] for i in ids],
        [accounts[i].get("next_sweep_at") for i in ids],
    )


async def save_rule_states(
    *, conn: asyncpg.Connection, states: dict[str, dict[str, RuleState]]
) -> None:
    rows = [
        (account_id, rule, state)
        for account_id in sorted(states)
        for rule, state in sorted(states[account_id].items())
    ]
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO rule_states (account_id, rule, armed, episode, last_fired_at,
                                 condition_since, cleared_since, last_value)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::int[], $5::timestamptz[],
                             $6::timestamptz[], $7::timestamptz[], $8::float8[])
        ON CONFLICT (account_id, rule) DO UPDATE
        SET armed = EXCLUDED.armed, episode = EXCLUDED.episode,
            last_fired_at = EXCLUDED.last_fired_at, condition_since = EXCLUDED.condition_since,
            cleared_since = EXCLUDED.cleared_since, last_value = EXCLUDED.last_value
        """,
        # Attributes, not dataclasses.asdict: asdict deep-copies every value (a fifth of the
        # consumer's time under load).
        [a for a, _, _ in rows],
        [r for _, r, _ in rows],
        [s.armed for _, _, s in rows],
        [s.episode for _, _, s in rows],
        [s.last_fired_at for _, _, s in rows],
        [s.condition_since for _, _, s in rows],
        [s.cleared_since for _, _, s in rows],
        [s.last_value for _, _, s in rows],
    )


async def insert_signals(
    *, conn: asyncpg.Connection, signals: Sequence, measures: dict[str, dict] | None = None
) -> set[str]:
    """Insert new signals (with the `measures` some rules keep, by signal id); a replayed one
    (same deterministic id) is left as it is."""
    if not signals:
        return set()
    measures = measures or {}
    kept = [measures.get(s.signal_id) for s in signals]
    rows = await conn.fetch(
        """
        INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode, fired_at,
                             payload, measures)
        SELECT id, account, kind, rule, priority, episode, fired_at, payload::jsonb,
               measures::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[], $8::text[], $9::text[])
             AS u(id, account, kind, rule, priority, episode, fired_at, payload, measures)
        ON CONFLICT (signal_id) DO NOTHING
        RETURNING signal_id
        """,
        [s.signal_id for s in signals],
        [s.account_id for s in signals],
        [s.kind for s in signals],
        [s.rule for s in signals],
        [s.priority for s in signals],
        [s.episode for s in signals],
        [s.fired_at for s in signals],
        [s.model_dump_json() for s in signals],
        [None if m is None else orjson.dumps(m).decode() for m in kept],
    )
    return {row["signal_id"] for row in rows}


async def resolve_cleared(
    *, conn: asyncpg.Connection, cleared: Sequence[tuple[str, str]], now: datetime
) -> list[str]:
    """Churn-risk signals whose condition has been clear long enough resolve themselves."""
    if not cleared:
        return []
    rows = await conn.fetch(
        """
        UPDATE signals s SET status = 'resolved', status_changed_at = $3,
               status_changed_by = 'kizashi:auto-resolve'
        FROM unnest($1::text[], $2::text[]) AS c(account_id, rule)
        WHERE s.account_id = c.account_id AND s.rule = c.rule
          AND s.status = ANY($4::text[])
        RETURNING s.signal_id
        """,
        [a for a, _ in cleared],
        [r for _, r in cleared],
        now,
        ACTIVE_STATUSES,
    )
    ids = [row["signal_id"] for row in rows]
    await record_actions(
        conn=conn, signal_ids=ids, action="resolved", actor="kizashi:auto-resolve", detail=None
    )
    return ids


async def record_actions(
    *,
    conn: asyncpg.Connection,
    signal_ids: Sequence[str],
    action: str,
    actor: str,
    detail: dict | None,
) -> None:
    if not signal_ids:
        return
    await conn.execute(
        """
        INSERT INTO signal_actions (signal_id, action, actor, detail)
        SELECT id, $2, $3, $4::jsonb FROM unnest($1::text[]) AS u(id)
        """,
        list(signal_ids),
        action,
        actor,
        orjson.dumps(detail).decode() if detail is not None else None,
    )


# -- Signal lifecycle (kizashi.triggers.lifecycle) ------------------------------------------


async def lock_signal_status(*, conn: asyncpg.Connection, signal_id: str) -> str | None:
    """The signal's status, its row locked until the transaction ends; None if there is none."""
    return await conn.fetchval(
        "SELECT status FROM signals WHERE signal_id = $1 FOR UPDATE", signal_id
    )


async def set_signal_status(
    *,
    conn: asyncpg.Connection,
    signal_id: str,
    status: str,
    snoozed_until: datetime | None,
    now: datetime,
    actor: str,
    snooze_measures: dict | None = None,
) -> dict:
    """`snooze_measures`: the measures at a snooze (kizashi.triggers.worse); any other step
    clears them."""
    row = await conn.fetchrow(
        """
        UPDATE signals SET status = $2, snoozed_until = $3, status_changed_at = $4,
               status_changed_by = $5, snooze_measures = $6::jsonb
        WHERE signal_id = $1
        RETURNING signal_id, status, snoozed_until, status_changed_at, status_changed_by
        """,
        signal_id,
        status,
        snoozed_until,
        now,
        actor,
        None if snooze_measures is None else orjson.dumps(snooze_measures).decode(),
    )
    return dict(row)


async def reopen_due_snoozes(*, conn: asyncpg.Connection, now: datetime) -> list[str]:
    """Snoozed signals whose time is up go back to open; returns their ids."""
    rows = await conn.fetch(
        """
        UPDATE signals SET status = 'open', snoozed_until = NULL, snooze_measures = NULL,
               status_changed_at = $1, status_changed_by = 'kizashi:snooze-ended'
        WHERE status = 'snoozed' AND snoozed_until <= $1
        RETURNING signal_id
        """,
        now,
    )
    return [row["signal_id"] for row in rows]


# -- The signals API -------------------------------------------------------------------------

_SIGNAL_COLUMNS = """signal_id, account_id, kind, rule, priority, status, snoozed_until,
                     fired_at, status_changed_at, status_changed_by, payload::text AS payload,
                     feedback_useful, feedback_reason, feedback_by, feedback_at"""


async def list_signals(
    *,
    conn: asyncpg.Connection,
    status: str | None,
    kind: str | None,
    account_id: str | None,
    rule: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The newest signals first; each filter that is None matches everything."""
    return await conn.fetch(
        f"""
        SELECT {_SIGNAL_COLUMNS} FROM signals
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
          AND ($3::text IS NULL OR account_id = $3) AND ($4::text IS NULL OR rule = $4)
        ORDER BY fired_at DESC, signal_id LIMIT $5
        """,  # noqa: S608 - _SIGNAL_COLUMNS is a constant
        status,
        kind,
        account_id,
        rule,
        limit,
    )


async def signal_owner(*, conn: asyncpg.Connection, signal_id: str) -> tuple[str | None] | None:
    """(owner_email,) of the signal's account, lower-case: its owner now (the latest change),
    else when it fired; None when there is no such signal. The console's inbox uses the same
    expression for "mine" (kizashi.console.repository)."""
    row = await conn.fetchrow(
        """
        SELECT lower(coalesce(ta.latest -> 'account' ->> 'owner_email',
                              s.payload -> 'account' ->> 'owner_email')) AS owner
        FROM signals s LEFT JOIN trigger_accounts ta ON ta.account_id = s.account_id
        WHERE s.signal_id = $1
        """,
        signal_id,
    )
    return None if row is None else (row["owner"],)


async def get_signal(*, conn: asyncpg.Connection, signal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE signal_id = $1",  # noqa: S608
        signal_id,
    )


async def signal_actions(*, conn: asyncpg.Connection, signal_id: str) -> list[asyncpg.Record]:
    """The signal's recorded lifecycle steps, oldest first (`detail` as JSON text)."""
    return await conn.fetch(
        """
        SELECT action, actor, at, detail::text AS detail FROM signal_actions
        WHERE signal_id = $1 ORDER BY id
        """,
        signal_id,
    )


# -- Feedback and each rule's performance (kizashi.triggers.feedback, .performance) ----------


async def record_feedback(
    *,
    conn: asyncpg.Connection,
    signal_id: str,
    useful: bool,
    reason: str | None,
    actor: str,
    channel: str,
    now: datetime,
) -> asyncpg.Record | None:
    """The answer becomes the signal's current feedback and one more 'feedback' row of its
    history, in one statement; None (and nothing written) when there is no such signal."""
    return await conn.fetchrow(
        """
        WITH current AS (
            UPDATE signals SET feedback_useful = $2, feedback_reason = $3, feedback_by = $4,
                   feedback_at = $6
            WHERE signal_id = $1
            RETURNING signal_id, feedback_useful, feedback_reason, feedback_by, feedback_at
        ), logged AS (
            INSERT INTO signal_actions (signal_id, action, actor, at, detail)
            SELECT signal_id, 'feedback', $4, $6,
                   jsonb_build_object('useful', $2::bool, 'reason', $3::text, 'channel', $5::text)
            FROM current
        )
        SELECT * FROM current
        """,
        signal_id,
        useful,
        reason,
        actor,
        channel,
        now,
    )


# A rule's record and the outcomes it is judged by (kizashi.triggers.repository.performance).
from kizashi.triggers.repository.performance import (  # noqa: E402
    FIRST_ACTIONS as FIRST_ACTIONS,
)
from kizashi.triggers.repository.performance import (  # noqa: E402
    account_outcomes as account_outcomes,
)
from kizashi.triggers.repository.performance import (  # noqa: E402
    account_owner as account_owner,
)
from kizashi.triggers.repository.performance import (  # noqa: E402
    get_outcome as get_outcome,
)
from kizashi.triggers.repository.performance import (  # noqa: E402
    insert_outcomes as insert_outcomes,
)
from kizashi.triggers.repository.performance import (  # noqa: E402
    rule_performance as rule_performance,
)

# Snooze unless worse (kizashi.triggers.worse).
from kizashi.triggers.repository.snoozes import (  # noqa: E402
    reopen_worse as reopen_worse,
)
from kizashi.triggers.repository.snoozes import (  # noqa: E402
    signal_account_latest as signal_account_latest,
)
from kizashi.triggers.repository.snoozes import (  # noqa: E402
    snoozed_watching as snoozed_watching,
)
