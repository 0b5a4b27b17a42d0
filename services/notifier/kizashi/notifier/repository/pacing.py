"""The notifier's SQL for pacing each webhook, shared by every replica (`webhook_pacing`;
kizashi.notifier.pacing). Keyword-only functions on a connection the caller holds."""

import asyncpg


async def take_webhook_slot(
    *, conn: asyncpg.Connection, webhook_key: str, interval_s: float
) -> tuple[float, float]:
    """Reserve the next send slot of one webhook: (seconds until the slot, seconds the webhook
    is paused for after a 429). The row holds when the next message may go (`next_at`); taking
    a slot moves it one interval on, atomically, so replicas share one pace.

    The key is a digest of the webhook's URL (the URL is a credential and never stored)."""
    row = await conn.fetchrow(
        """
        INSERT INTO webhook_pacing AS p (webhook_key, next_at)
        VALUES ($1, clock_timestamp() + make_interval(secs => $2::float8))
        ON CONFLICT (webhook_key) DO UPDATE
        SET next_at = greatest(p.next_at, p.paused_until, clock_timestamp())
                      + make_interval(secs => $2::float8)
        RETURNING extract(epoch FROM next_at - clock_timestamp())::float8 - $2::float8 AS wait_s,
                  greatest(extract(epoch FROM paused_until - clock_timestamp())::float8, 0)
                      AS paused_s
        """,
        webhook_key,
        interval_s,
    )
    return max(row["wait_s"], 0.0), row["paused_s"] or 0.0


async def webhook_paused_for(*, conn: asyncpg.Connection, webhook_key: str) -> float:
    """Seconds left of a 429 pause on this webhook (0 when none)."""
    value = await conn.fetchval(
        """
        SELECT greatest(extract(epoch FROM paused_until - clock_timestamp())::float8, 0)
        FROM webhook_pacing WHERE webhook_key = $1
        """,
        webhook_key,
    )
    return value or 0.0


async def pause_webhook(*, conn: asyncpg.Connection, webhook_key: str, seconds: float) -> None:
    """Hold every replica's sends to this webhook for `seconds` (it answered 429)."""
    await conn.execute(
        """
        INSERT INTO webhook_pacing AS p (webhook_key, next_at, paused_until)
        VALUES ($1, clock_timestamp(), clock_timestamp() + make_interval(secs => $2::float8))
        ON CONFLICT (webhook_key) DO UPDATE
        SET paused_until = greatest(p.paused_until,
                                    clock_timestamp() + make_interval(secs => $2::float8))
        """,
        webhook_key,
        seconds,
    )
