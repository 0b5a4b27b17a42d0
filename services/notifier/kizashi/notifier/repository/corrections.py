"""The SQL of corrections (issue #20; kizashi.notifier.correction): what a retracted signal's
deliveries become, and the row a correction reads of the alert it corrects."""

from collections.abc import Sequence

import asyncpg
import orjson


async def record_corrections(
    *,
    conn: asyncpg.Connection,
    signals: Sequence[tuple[str, dict]],
    suffix: str,
    uncorrected_channel: str,
) -> None:
    """For each retracted signal (id, its JSON with `retracted`): cancel its deliveries not
    sent yet, and record one correction per receiver it was sent to (or is being sent to),
    its id the latest such delivery's plus `suffix` (a reopened signal has a delivery per
    reopening: one correction still). A delivery on `uncorrected_channel` (customer emails)
    gets none. A receiver that has a correction already is left as it is
    (kizashi.notifier.correction)."""
    if not signals:
        return
    signals = sorted(signals)
    ids = [signal_id for signal_id, _ in signals]
    await conn.execute(
        """
        UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = now(),
               last_error = 'the signal was retracted before this was sent'
        WHERE signal_id = ANY($1::text[]) AND status = 'pending'
          AND NOT delivery_id LIKE '%' || $2
        """,
        ids,
        suffix,
    )
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_id, signal_id, receiver, channel, status, payload,
                                next_attempt_at, traceparent)
        SELECT id, signal_id, receiver, channel, 'pending', payload, now(), traceparent
        FROM (
            -- The latest delivery sent to each receiver: one being sent now (no sent_at yet),
            -- else the last sent.
            SELECT DISTINCT ON (d.signal_id, d.receiver)
                   d.delivery_id || $3 AS id, d.signal_id, d.receiver, d.channel,
                   r.payload::jsonb AS payload, d.traceparent
            FROM unnest($1::text[], $2::text[]) AS r(signal_id, payload)
            JOIN deliveries d ON d.signal_id = r.signal_id
            WHERE d.status IN ('sent', 'sending') AND d.channel <> $4
              AND NOT d.delivery_id LIKE '%' || $3
              AND NOT EXISTS (
                  SELECT 1 FROM deliveries c
                  WHERE c.signal_id = d.signal_id AND c.receiver = d.receiver
                    AND c.delivery_id LIKE '%' || $3
              )
            ORDER BY d.signal_id, d.receiver, d.sent_at DESC NULLS FIRST, d.created_at DESC,
                     d.delivery_id DESC
        ) latest
        ORDER BY id
        ON CONFLICT (delivery_id) DO NOTHING
        """,
        ids,
        [orjson.dumps(payload).decode() for _, payload in signals],
        suffix,
        uncorrected_channel,
    )


async def delivery_row(*, conn: asyncpg.Connection, delivery_id: str) -> dict | None:
    """A delivery's id, status and digest key (a correction reads the alert it corrects)."""
    row = await conn.fetchrow(
        "SELECT delivery_id, status, digest_key FROM deliveries WHERE delivery_id = $1",
        delivery_id,
    )
    return None if row is None else dict(row)
