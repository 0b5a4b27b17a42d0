"""The SQL of snooze unless worse (kizashi.triggers.worse): what a snooze records, the
snoozed signals a batch may reopen, and the reopening. Keyword-only functions on a connection
the caller holds in a transaction; every value a bound parameter."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson


async def signal_account_latest(*, conn: asyncpg.Connection, signal_id: str) -> dict | None:
    """The latest scores.changed triggers holds for the signal's account (None if none)."""
    text = await conn.fetchval(
        """
        SELECT ta.latest::text FROM signals s JOIN trigger_accounts ta USING (account_id)
        WHERE s.signal_id = $1
        """,
        signal_id,
    )
    return None if text is None else orjson.loads(text)


async def snoozed_watching(
    *, conn: asyncpg.Connection, account_ids: Sequence[str], rules: Sequence[str]
) -> list[dict]:
    """The snoozed signals of these accounts whose rule is one of `rules` and whose measures
    were recorded at the snooze (through the partial index signals_snoozed_watching), with
    when they were snoozed, those measures and the signal as published (payload)."""
    rows = await conn.fetch(
        """
        SELECT signal_id, account_id, rule, status_changed_at AS snoozed_at,
               snooze_measures::text AS measures, payload::text AS payload
        FROM signals
        WHERE account_id = ANY($1::text[]) AND rule = ANY($2::text[])
          AND status = 'snoozed' AND snooze_measures IS NOT NULL
        """,
        sorted(account_ids),
        list(rules),
    )
    return [
        {
            **dict(row),
            "measures": orjson.loads(row["measures"]),
            "payload": orjson.loads(row["payload"]),
        }
        for row in rows
    ]


async def reopen_worse(
    *, conn: asyncpg.Connection, signals: Sequence[tuple], now: datetime
) -> set[str]:
    """Reopen snoozed signals that got worse: (signal, reason) pairs. Each becomes open with
    the payload as published again, its snooze measures cleared, and a 'reopened' step with
    the reason, in one statement; only signals still snoozed (once per snooze)."""
    if not signals:
        return set()
    ordered = sorted(signals, key=lambda pair: pair[0].signal_id)
    rows = await conn.fetch(
        """
        WITH reopened AS (
            UPDATE signals s SET status = 'open', snoozed_until = NULL, snooze_measures = NULL,
                   status_changed_at = $4, status_changed_by = 'kizashi:worse-since-snooze',
                   payload = u.payload::jsonb
            FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, payload, reason)
            WHERE s.signal_id = u.id AND s.status = 'snoozed'
            RETURNING s.signal_id, u.reason
        ), logged AS (
            INSERT INTO signal_actions (signal_id, action, actor, at, detail)
            SELECT signal_id, 'reopened', 'kizashi:worse-since-snooze', $4,
                   jsonb_build_object('reason', reason)
            FROM reopened
        )
        SELECT signal_id FROM reopened
        """,
        [s.signal_id for s, _ in ordered],
        [s.model_dump_json() for s, _ in ordered],
        [reason for _, reason in ordered],
        now,
    )
    return {row["signal_id"] for row in rows}
