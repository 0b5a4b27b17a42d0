"""The SQL of corrections (issue #20, kizashi.triggers.corrections): retract signals late
events showed did not hold, with one action row each. Set-based: one statement per batch for
all of its retractions; every value a bound parameter."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson


async def retract(
    *,
    conn: asyncpg.Connection,
    signal_ids: Sequence[str],
    reasons: Sequence[str],
    now: datetime,
) -> list[tuple[str, str]]:
    """Mark the signals `retracted` (from any other status), the retraction written into the
    stored signal too; then (signal id, the signal's JSON with `retracted`) for each one this
    call retracted. A signal already retracted is left as it is and not returned: a replay or
    another replica publishes no second correction."""
    if not signal_ids:
        return []
    rows = await conn.fetch(
        """
        WITH retracted AS (
            UPDATE signals s
               SET status = 'retracted', snoozed_until = NULL, status_changed_at = $3,
                   status_changed_by = 'kizashi:correction',
                   payload = s.payload || jsonb_build_object(
                       'retracted', jsonb_build_object('at', $3::timestamptz, 'reason', r.reason))
              FROM unnest($1::text[], $2::text[]) AS r(signal_id, reason)
             WHERE s.signal_id = r.signal_id AND s.status <> 'retracted'
            RETURNING s.signal_id, s.payload, r.reason
        ), logged AS (
            INSERT INTO signal_actions (signal_id, action, actor, at, detail)
            SELECT signal_id, 'retracted', 'kizashi:correction', $3,
                   jsonb_build_object('reason', reason)
              FROM retracted
        )
        SELECT signal_id, payload::text AS payload FROM retracted ORDER BY signal_id
        """,
        list(signal_ids),
        list(reasons),
        now,
    )
    return [(row["signal_id"], row["payload"]) for row in rows]


async def fired_measures(*, conn: asyncpg.Connection, signal_ids: Sequence[str]) -> dict[str, dict]:
    """The figures stored with these signals when they fired (those not retracted yet)."""
    if not signal_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT signal_id, measures::text AS measures FROM signals
        WHERE signal_id = ANY($1::text[]) AND measures IS NOT NULL AND status <> 'retracted'
        """,
        sorted(signal_ids),
    )
    return {row["signal_id"]: orjson.loads(row["measures"]) for row in rows}
