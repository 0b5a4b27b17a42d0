"""Every SQL statement of the notifier service (deliveries, delivery_attempts), as
keyword-only functions on a connection the caller holds in a transaction (`raw_transaction`).

Writes are set-based (arrays through `unnest`, ids sorted so that concurrent writers lock rows
in one order); claims use FOR UPDATE SKIP LOCKED so that replicas never wait on each other.
Every value is a bound parameter; the SQL fragments spliced into the text are constants."""

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
    # For a digest route: the group this delivery joins, and when the group goes out.
    digest_key: str | None = None
    not_before: datetime | None = None
    # The W3C traceparent of the signal's trace (tracing on only): the send joins it.
    traceparent: str | None = None
    # Counted against an owner's daily budget: its key, "immediate" or "deferred", its rank.
    budget_key: str | None = None
    budgeted: str | None = None
    alert_rank: float | None = None


async def record_intents(*, conn: asyncpg.Connection, intents: Sequence[Intent]) -> None:
    """A replayed signal finds its deliveries already recorded and adds nothing."""
    intents = sorted(intents, key=lambda i: i.delivery_id)
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_id, signal_id, receiver, channel, status, payload,
                                digest_key, next_attempt_at, traceparent, budget_key, budgeted,
                                alert_rank)
        SELECT id, signal, receiver, channel, 'pending', payload::jsonb, digest_key,
               COALESCE(not_before, now()), traceparent, budget_key, budgeted, alert_rank
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::float8[])
             AS u(id, signal, receiver, channel, payload, digest_key, not_before, traceparent,
                  budget_key, budgeted, alert_rank)
        ON CONFLICT (delivery_id) DO NOTHING
        """,
        [i.delivery_id for i in intents],
        [i.signal_id for i in intents],
        [i.receiver for i in intents],
        [i.channel for i in intents],
        [orjson.dumps(i.payload).decode() for i in intents],
        [i.digest_key for i in intents],
        [i.not_before for i in intents],
        [i.traceparent for i in intents],
        [i.budget_key for i in intents],
        [i.budgeted for i in intents],
        [i.alert_rank for i in intents],
    )


async def recorded_ids(*, conn: asyncpg.Connection, delivery_ids: Sequence[str]) -> set[str]:
    """Which of these deliveries are recorded already (a replayed signal's)."""
    rows = await conn.fetch(
        "SELECT delivery_id FROM deliveries WHERE delivery_id = ANY($1::text[])",
        sorted(delivery_ids),
    )
    return {row["delivery_id"] for row in rows}


async def lock_budget_days(
    *, conn: asyncpg.Connection, budget_keys: Sequence[str]
) -> dict[str, tuple[int, float | None]]:
    """Take each key's lock for the rest of the transaction (a transaction-level advisory
    lock on the key's hash, in ascending hash order so that two replicas never deadlock), then
    read each owner's day so far from the rows: (alerts sent at once, highest rank), leaving
    out the alerts a retraction cancelled before they went (they took none of the rep's
    attention). A second replica deciding for the same owner waits here until this
    transaction's rows are committed, so both count them."""
    keys = sorted(set(budget_keys))
    # One round trip; the subquery's ORDER BY fixes the order the locks are taken in.
    await conn.execute(
        """
        SELECT count(pg_advisory_xact_lock(h)) FROM (
            SELECT DISTINCT hashtextextended(k, 1820) AS h FROM unnest($1::text[]) AS k
            ORDER BY h
        ) ordered
        """,
        keys,
    )
    rows = await conn.fetch(
        """
        SELECT budget_key,
               count(*) FILTER (WHERE budgeted = 'immediate' AND status <> 'cancelled')::int
                   AS immediate,
               max(alert_rank) FILTER (WHERE status <> 'cancelled') AS best
        FROM deliveries WHERE budget_key = ANY($1::text[])
        GROUP BY budget_key
        """,
        keys,
    )
    return {row["budget_key"]: (row["immediate"], row["best"]) for row in rows}


# A row left `sending` by a process that died, once its lease ran out (not one of ours).
ABANDONED = """
    (status = 'sending' AND updated_at < $1::timestamptz - make_interval(secs => $2::float8)
     AND NOT (delivery_id = ANY($3::text[])))
"""
RETURNED = (
    "delivery_id, signal_id, receiver, channel, attempts, digest_key, traceparent,"
    " payload::text AS payload"
)


def _rows(rows: Sequence[asyncpg.Record]) -> list[dict]:
    return [{**dict(row), "payload": orjson.loads(row["payload"])} for row in rows]


async def claim_due(
    *,
    conn: asyncpg.Connection,
    now: datetime,
    lease_s: float,
    in_flight: Sequence[str],
    limit: int,
) -> list[dict]:
    """Mark due single deliveries as being sent (the intent, recorded before the send). A
    delivery left `sending` by a process that died is claimed again once its lease has run out."""
    rows = await conn.fetch(
        f"""
        UPDATE deliveries d SET status = 'sending', attempts = attempts + 1, updated_at = $1
        WHERE delivery_id IN (
            SELECT delivery_id FROM deliveries
            WHERE digest_key IS NULL
              AND ((status = 'pending' AND next_attempt_at <= $1) OR {ABANDONED})
            ORDER BY next_attempt_at NULLS FIRST, delivery_id
            LIMIT $4 FOR UPDATE SKIP LOCKED
        )
        RETURNING {RETURNED}
        """,  # noqa: S608 - ABANDONED and RETURNED are constants
        now,
        lease_s,
        list(in_flight),
        limit,
    )
    return _rows(rows)


async def claim_digests(
    *,
    conn: asyncpg.Connection,
    now: datetime,
    lease_s: float,
    in_flight: Sequence[str],
    limit: int,
) -> list[list[dict]]:
    """Claim whole digests: every pending (or abandoned) delivery of each due group, a group
    being the rows of one digest key with one attempt count. Each group, sorted by delivery
    id, is one message.

    The attempt count keeps a message's rows together: rows that went out (or were tried)
    together share it, so a retry or a reclaim after a lost lease carries exactly the same
    rows (and keeps its delivery id), while a row that joined the key late (attempts 0) goes
    out in a message of its own instead of joining a resend of rows already delivered.

    A group is due when all its pending rows are (a retry moves them together). Two workers
    may pick the same group; the UPDATE re-checks each row under its lock, so the second finds
    them `sending` and claims nothing. A row committed between the two statements is claimed
    with its group (the UPDATE reads it), and the delivery id names the rows claimed."""
    groups = await conn.fetch(
        f"""
        SELECT digest_key, attempts FROM deliveries
        WHERE digest_key IS NOT NULL AND (status = 'pending' OR {ABANDONED})
        GROUP BY digest_key, attempts
        HAVING bool_and(status <> 'pending' OR next_attempt_at <= $1)
        ORDER BY min(next_attempt_at), digest_key, attempts
        LIMIT $4
        """,  # noqa: S608 - ABANDONED is a constant
        now,
        lease_s,
        list(in_flight),
        limit,
    )
    if not groups:
        return []
    rows = await conn.fetch(
        f"""
        UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = $1
        WHERE (digest_key, attempts) IN (SELECT * FROM unnest($4::text[], $5::int[]))
          AND (status = 'pending' OR {ABANDONED})
        RETURNING {RETURNED}
        """,  # noqa: S608 - ABANDONED and RETURNED are constants
        now,
        lease_s,
        list(in_flight),
        [g["digest_key"] for g in groups],
        [g["attempts"] for g in groups],
    )
    claimed: dict[tuple[str, int], list[dict]] = {}
    for row in sorted(_rows(rows), key=lambda r: r["delivery_id"]):
        claimed.setdefault((row["digest_key"], row["attempts"]), []).append(row)
    return list(claimed.values())


async def record_attempts(
    *,
    conn: asyncpg.Connection,
    delivery_ids: Sequence[str],
    attempt: int,
    outcome: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
    now: datetime,
) -> None:
    """One attempt's result for one delivery, or for every delivery a digest carried."""
    status = {"sent": "sent", "retry": "pending", "failed": "failed", "skipped": "skipped"}[outcome]
    ids = sorted(delivery_ids)
    await conn.execute(
        """
        UPDATE deliveries SET status = $2, next_attempt_at = $3, last_error = $4,
               sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END, updated_at = $5,
               attempts = GREATEST(attempts, $6)
        WHERE delivery_id = ANY($1::text[])
        """,
        ids,
        status,
        next_attempt_at,
        error,
        now,
        attempt,
    )
    await conn.execute(
        """
        INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, status_code, error)
        SELECT id, $2, $3, $4, $5, $6 FROM unnest($1::text[]) AS u(id)
        """,
        ids,
        attempt,
        now,
        outcome,
        status_code,
        error,
    )


async def count_unsent_due(*, conn: asyncpg.Connection, now: datetime) -> int:
    """Deliveries due now and not sent: pending ones whose time has come, and those being
    sent. What a clean stop of `kizashi up` waits for; one waiting for a later retry or for
    its digest window is not due, and stays for the next start."""
    return await conn.fetchval(
        """
        SELECT count(*) FROM deliveries
        WHERE status = 'sending' OR (status = 'pending' AND next_attempt_at <= $1)
        """,
        now,
    )


# -- The deliveries API ----------------------------------------------------------------------


async def list_deliveries(
    *,
    conn: asyncpg.Connection,
    signal_id: str | None,
    status: str | None,
    channel: str | None,
    limit: int,
) -> list[dict]:
    """The newest deliveries first, each with its attempts (oldest first) as `attempt_log`;
    each filter that is None matches everything."""
    rows = await conn.fetch(
        """
        SELECT d.delivery_id, d.signal_id, d.receiver, d.channel, d.status, d.attempts,
               d.next_attempt_at, d.last_error, d.created_at, d.sent_at,
               d.digest_key, d.budgeted,
               COALESCE((SELECT json_agg(json_build_object(
                            'attempt', a.attempt, 'at', a.at, 'outcome', a.outcome,
                            'status_code', a.status_code, 'error', a.error)
                         ORDER BY a.at, a.id)
                         FROM delivery_attempts a WHERE a.delivery_id = d.delivery_id),
                        '[]')::text AS attempt_log
        FROM deliveries d
        WHERE ($1::text IS NULL OR d.signal_id = $1) AND ($2::text IS NULL OR d.status = $2)
          AND ($3::text IS NULL OR d.channel = $3)
        ORDER BY d.created_at DESC, d.delivery_id LIMIT $4
        """,
        signal_id,
        status,
        channel,
        limit,
    )
    return [{**dict(row), "attempt_log": orjson.loads(row["attempt_log"])} for row in rows]


async def retry_failed(*, conn: asyncpg.Connection, delivery_id: str, now: datetime) -> dict | None:
    """Make a failed delivery pending again, with every failed delivery of its digest (they
    failed together and are retried together, as one message). None if it is not failed."""
    row = await conn.fetchrow(
        """
        WITH target AS (
            SELECT delivery_id, digest_key FROM deliveries
            WHERE delivery_id = $1 AND status = 'failed'
        ), retried AS (
            UPDATE deliveries d SET status = 'pending', next_attempt_at = $2, attempts = 0,
                   updated_at = $2
            FROM target t
            WHERE d.status = 'failed'
              AND (d.delivery_id = t.delivery_id OR d.digest_key = t.digest_key)
            RETURNING d.delivery_id
        )
        SELECT $1::text AS delivery_id, 'pending' AS status,
               (SELECT count(*) FROM retried)::int AS deliveries
        FROM target
        """,
        delivery_id,
        now,
    )
    return None if row is None else dict(row)


async def delivery_status(*, conn: asyncpg.Connection, delivery_id: str) -> str | None:
    return await conn.fetchval("SELECT status FROM deliveries WHERE delivery_id = $1", delivery_id)


async def renew_leases(
    *, conn: asyncpg.Connection, delivery_ids: Sequence[str], now: datetime
) -> int:
    """Extend the lease of deliveries this process is still sending (waiting in the pacing, or
    sent with the result not yet recorded), so that no other replica claims them as abandoned
    while this one is alive. Only rows still `sending` are touched."""
    result = await conn.execute(
        """
        UPDATE deliveries SET updated_at = $2
        WHERE delivery_id = ANY($1::text[]) AND status = 'sending'
        """,
        sorted(delivery_ids),
        now,
    )
    return int(result.split()[-1])


# -- Another service's table, read only ------------------------------------------------------


async def current_owner(*, conn: asyncpg.Connection, account_id: str) -> dict | None:
    """The account's name and owners as scoring holds them now (scoring's `accounts` table,
    read only: architecture §4), or None when scoring has not seen the account."""
    row = await conn.fetchrow(
        """
        SELECT facts->>'name' AS name, facts->>'owner_email' AS owner_email,
               facts->>'owner_slack' AS owner_slack
        FROM accounts WHERE account_id = $1
        """,
        account_id,
    )
    return None if row is None else dict(row)
