"""Set-based reads and writes of the triggers tables (one statement per batch)."""

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

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


async def lock_accounts(connection: asyncpg.Connection, account_ids: Iterable[str]) -> dict:
    """The consumer's accounts, locked, without `latest`: the consumer replaces it with the
    change it decides on and never reads the old one (a few kB per account to ship and parse;
    the sweep, which does read it, uses `lock_due_accounts`)."""
    rows = await connection.fetch(
        f"""
        SELECT {_MEMORY_COLUMNS}
        FROM trigger_accounts WHERE account_id = ANY($1::text[])
        ORDER BY account_id FOR UPDATE
        """,  # noqa: S608 - a constant column list
        sorted(set(account_ids)),
    )
    return _memory_rows(rows)


async def lock_due_accounts(connection: asyncpg.Connection, now: datetime, limit: int) -> dict:
    """Up to `limit` accounts whose sweep time has come, locked. Rows the consumer holds are
    skipped (it is evaluating them anyway), so the sweep never waits on it nor deadlocks."""
    rows = await connection.fetch(
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
    connection: asyncpg.Connection, account_ids: Iterable[str]
) -> dict[str, dict[str, RuleState]]:
    rows = await connection.fetch(
        """
        SELECT account_id, rule, armed, episode, last_fired_at, condition_since,
               cleared_since, last_value
        FROM rule_states WHERE account_id = ANY($1::text[])
        """,
        sorted(set(account_ids)),
    )
    states: dict[str, dict[str, RuleState]] = {}
    for row in rows:
        values = dict(row)
        account_id, rule = values.pop("account_id"), values.pop("rule")
        states.setdefault(account_id, {})[rule] = RuleState(**values)
    return states


async def save_accounts(connection: asyncpg.Connection, accounts: dict[str, dict]) -> None:
    ids = sorted(accounts)
    if not ids:
        return
    await connection.execute(
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
    connection: asyncpg.Connection, states: dict[str, dict[str, RuleState]]
) -> None:
    rows = [
        (account_id, rule, state)
        for account_id in sorted(states)
        for rule, state in sorted(states[account_id].items())
    ]
    if not rows:
        return
    await connection.execute(
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


async def insert_signals(connection: asyncpg.Connection, signals: Sequence) -> set[str]:
    """Insert new signals; a replayed one (same deterministic id) is left as it is."""
    if not signals:
        return set()
    rows = await connection.fetch(
        """
        INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode, fired_at,
                             payload)
        SELECT id, account, kind, rule, priority, episode, fired_at, payload::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[], $8::text[])
             AS u(id, account, kind, rule, priority, episode, fired_at, payload)
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
    )
    return {row["signal_id"] for row in rows}


async def resolve_cleared(
    connection: asyncpg.Connection, cleared: Sequence[tuple[str, str]], now: datetime
) -> list[str]:
    """Churn-risk signals whose condition has been clear long enough resolve themselves."""
    if not cleared:
        return []
    rows = await connection.fetch(
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
    await record_actions(connection, ids, "resolved", "kizashi:auto-resolve", None)
    return ids


async def record_actions(
    connection: asyncpg.Connection,
    signal_ids: Sequence[str],
    action: str,
    actor: str,
    detail: dict | None,
) -> None:
    if not signal_ids:
        return
    await connection.execute(
        """
        INSERT INTO signal_actions (signal_id, action, actor, detail)
        SELECT id, $2, $3, $4::jsonb FROM unnest($1::text[]) AS u(id)
        """,
        list(signal_ids),
        action,
        actor,
        orjson.dumps(detail).decode() if detail is not None else None,
    )


def today_count(account: dict | None, day: date) -> int:
    if account is None or account["fired_day"] != day:
        return 0
    return account["fired_today"]


def trim_history(history: list, now: datetime, keep_days: int = 30) -> list:
    horizon = now.timestamp() - keep_days * 86400
    return [point for point in history if point[0] >= horizon]


def parse_history(history: list) -> list[tuple[datetime, float]]:
    return [(datetime.fromtimestamp(t, UTC), cs) for t, cs in history]
