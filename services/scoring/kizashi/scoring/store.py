"""Set-based reads and writes of the scoring tables: one statement per batch, never one per
event. Keys are sorted before locking so that concurrent batches cannot deadlock."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson


@dataclass
class StoredAccount:
    account_id: str
    state: dict | None
    # What `scores.changed` last said (cs, op, segment, priority) and the features last
    # computed; None before the first score.
    scores: dict | None

    @classmethod
    def after(cls, scored: "ScoredAccount") -> "StoredAccount":
        """What `save` stores for `scored`, as `lock_accounts` reads it back."""
        return cls(
            scored.account_id,
            scored.state,
            {
                "cs": scored.published_cs,
                "op": scored.published_op,
                "segment": scored.segment,
                "priority": scored.priority,
                "features": scored.features,
            },
        )


async def claim_new_events(
    connection: asyncpg.Connection, event_ids: Sequence[str], account_ids: Sequence[str]
) -> set[str]:
    """Record event ids as applied; return the ones that were not applied before. Sorted, so
    that two partitions claiming the same ids cannot lock them in opposite orders.

    Only the ids already applied come back (almost always none): returning every fresh id
    made a row object for each event of the batch."""
    pairs = sorted(zip(event_ids, account_ids, strict=True))
    ids = [event_id for event_id, _ in pairs]
    rows = await connection.fetch(
        """
        WITH claimed AS (
            INSERT INTO processed_events (event_id, account_id)
            SELECT * FROM unnest($1::text[], $2::text[])
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        )
        SELECT id FROM unnest($1::text[]) AS u(id)
        EXCEPT
        SELECT event_id FROM claimed
        """,
        ids,
        [account_id for _, account_id in pairs],
    )
    return set(ids).difference(row["id"] for row in rows)


async def lock_accounts(
    connection: asyncpg.Connection, account_ids: Iterable[str]
) -> dict[str, StoredAccount]:
    """Lock the accounts' rows, then read their scores.

    Two statements, because a statement that waited for a lock re-reads only the rows it
    locked: a scores row joined in the same statement would be the version from before the
    other transaction committed, and its stale published CS and OP would be saved back."""
    ids = sorted(set(account_ids))
    locked = await connection.fetch(
        """
        SELECT account_id, state::text AS state FROM accounts
        WHERE account_id = ANY($1::text[])
        ORDER BY account_id
        FOR UPDATE
        """,
        ids,
    )
    scores = await connection.fetch(
        """
        SELECT account_id, coalesce(published_cs, cs) AS cs, coalesce(published_op, op) AS op,
               segment, priority, features::text AS features
        FROM scores WHERE account_id = ANY($1::text[])
        """,
        [row["account_id"] for row in locked],
    )
    published = {
        row["account_id"]: {
            "cs": row["cs"],
            "op": row["op"],
            "segment": row["segment"],
            "priority": row["priority"],
            "features": orjson.loads(row["features"]),
        }
        for row in scores
    }
    found = {
        row["account_id"]: StoredAccount(
            row["account_id"], orjson.loads(row["state"]), published.get(row["account_id"])
        )
        for row in locked
    }
    return {i: found.get(i) or StoredAccount(i, None, None) for i in ids}


@dataclass
class ScoredAccount:
    account_id: str
    facts: dict
    state: dict
    cs: float
    op: float
    segment: str
    priority: str
    breakdown: list  # BreakdownLine dataclasses (or dicts): orjson writes either
    features: dict
    config_version: str
    computed_at: datetime
    next_check_at: datetime | None
    # CS and OP as last published: these scores if they were, else the stored ones.
    published_cs: float
    published_op: float
    # The same breakdown and features already encoded, when the caller has them (the consumer
    # encodes each once for both the row and the scores.changed message).
    breakdown_json: bytes | None = None
    features_json: bytes | None = None


async def save(connection: asyncpg.Connection, scored: Sequence[ScoredAccount]) -> None:
    """Upsert accounts and scores in one statement (one round trip per batch)."""
    if not scored:
        return
    scored = sorted(scored, key=lambda s: s.account_id)
    await connection.execute(
        """
        WITH rows AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],
                                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                 $11::timestamptz[], $12::timestamptz[], $13::float8[],
                                 $14::float8[])
                AS u(id, facts, state, cs, op, segment, priority, breakdown, features, version,
                     computed_at, next_check_at, published_cs, published_op)
        ), saved_accounts AS (
            INSERT INTO accounts (account_id, facts, state, updated_at)
            SELECT id, facts::jsonb, state::json, now() FROM rows
            ON CONFLICT (account_id) DO UPDATE
            SET facts = EXCLUDED.facts, state = EXCLUDED.state, updated_at = now()
        )
        INSERT INTO scores (account_id, cs, op, segment, priority, breakdown, features,
                            config_version, computed_at, next_check_at, published_cs,
                            published_op)
        SELECT id, cs, op, segment, priority, breakdown::json, features::json,
               version, computed_at, next_check_at, published_cs, published_op
        FROM rows
        ON CONFLICT (account_id) DO UPDATE
        SET cs = EXCLUDED.cs, op = EXCLUDED.op, segment = EXCLUDED.segment,
            priority = EXCLUDED.priority, breakdown = EXCLUDED.breakdown,
            features = EXCLUDED.features, config_version = EXCLUDED.config_version,
            computed_at = EXCLUDED.computed_at, next_check_at = EXCLUDED.next_check_at,
            published_cs = EXCLUDED.published_cs, published_op = EXCLUDED.published_op
        """,
        [s.account_id for s in scored],
        [orjson.dumps(s.facts).decode() for s in scored],
        [orjson.dumps(s.state).decode() for s in scored],
        [s.cs for s in scored],
        [s.op for s in scored],
        [s.segment for s in scored],
        [s.priority for s in scored],
        [(s.breakdown_json or orjson.dumps(s.breakdown)).decode() for s in scored],
        [(s.features_json or orjson.dumps(s.features)).decode() for s in scored],
        [s.config_version for s in scored],
        [s.computed_at for s in scored],
        [s.next_check_at for s in scored],
        [s.published_cs for s in scored],
        [s.published_op for s in scored],
    )


async def due_for_check(connection: asyncpg.Connection, now: datetime, limit: int) -> list[str]:
    """Accounts whose scores time alone may have moved; idle, settled accounts are not read."""
    rows = await connection.fetch(
        """
        SELECT account_id FROM scores
        WHERE next_check_at <= $1
        ORDER BY next_check_at
        LIMIT $2
        """,
        now,
        limit,
    )
    return [row["account_id"] for row in rows]
