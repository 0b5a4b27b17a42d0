"""Set-based reads and writes of the notifier tables."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson


@dataclass(frozen=True)
class Intent:
    delivery_id: str
    signal_id: str
    receiver: str
    channel: str
    payload: dict
    digest_s: float | None = None


async def record_intents(connection: asyncpg.Connection, intents: Sequence[Intent]) -> None:
    """A replayed signal finds its deliveries already recorded and adds nothing."""
    intents = sorted(intents, key=lambda i: i.delivery_id)
    await connection.execute(
        """
        INSERT INTO deliveries (delivery_id, signal_id, receiver, channel, status, payload,
                                next_attempt_at)
        SELECT id, signal, receiver, channel, 'pending', payload::jsonb,
               CASE WHEN digest_s IS NULL THEN now()
                    ELSE to_timestamp(ceil(extract(epoch FROM now()) / digest_s) * digest_s)
               END
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
             AS u(id, signal, receiver, channel, payload, digest_s)
        ON CONFLICT (delivery_id) DO NOTHING
        """,
        [i.delivery_id for i in intents],
        [i.signal_id for i in intents],
        [i.receiver for i in intents],
        [i.channel for i in intents],
        [orjson.dumps(i.payload).decode() for i in intents],
        [i.digest_s for i in intents],
    )


CLAIMABLE = """
    (status = 'pending' AND next_attempt_at <= $1)
    OR (status = 'sending' AND updated_at < $1 - make_interval(secs => $2)
        AND NOT (delivery_id = ANY($3::text[])))
"""


async def claim_due(
    connection: asyncpg.Connection,
    *,
    now: datetime,
    lease_s: float,
    in_flight: Sequence[str],
    limit: int,
) -> list[dict]:
    """Mark due deliveries as being sent (the intent, recorded before the send). A delivery
    left `sending` by a process that died is claimed again once its lease has run out."""
    rows = await connection.fetch(
        f"""
        UPDATE deliveries d SET status = 'sending', attempts = attempts + 1, updated_at = $1
        WHERE delivery_id IN (
            SELECT delivery_id FROM deliveries WHERE {CLAIMABLE}
            ORDER BY next_attempt_at NULLS FIRST, delivery_id
            LIMIT $4 FOR UPDATE SKIP LOCKED
        )
        RETURNING delivery_id, signal_id, receiver, channel, attempts, payload::text AS payload
        """,  # noqa: S608 - CLAIMABLE is a constant
        now,
        lease_s,
        list(in_flight),
        limit,
    )
    return [{**dict(row), "payload": orjson.loads(row["payload"])} for row in rows]


async def record_attempt(
    connection: asyncpg.Connection,
    *,
    delivery_id: str,
    attempt: int,
    outcome: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
    now: datetime,
) -> None:
    status = {"sent": "sent", "retry": "pending", "failed": "failed"}[outcome]
    await connection.execute(
        """
        UPDATE deliveries SET status = $2, next_attempt_at = $3, last_error = $4,
               sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END, updated_at = $5
        WHERE delivery_id = $1
        """,
        delivery_id,
        status,
        next_attempt_at,
        error,
        now,
    )
    await connection.execute(
        """
        INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, status_code, error)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        delivery_id,
        attempt,
        now,
        outcome,
        status_code,
        error,
    )
