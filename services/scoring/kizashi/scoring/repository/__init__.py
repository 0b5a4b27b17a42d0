"""Every SQL statement of the scoring service (accounts, scores, processed_events,
observations, phase_changes), as keyword-only functions on a connection the caller holds in a
transaction (`raw_transaction`): the write path here, the read side in `reads` (the accounts
API, rescore's paging, score history), re-exported below so callers name one module.

Writes are set-based: one statement per batch, never one per event (arrays through `unnest`).
Keys are sorted before locking so that concurrent batches cannot deadlock. Every value is a
bound parameter; the only SQL text chosen at run time (ORDER BY) comes from a fixed table."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from kizashi.scoring.repository.reads import (  # noqa: F401 - re-exported
    ORDER_SQL,
    POSITIONS_SQL,
    Order,
    account_exists,
    account_ids_after,
    count_accounts,
    get_account,
    list_accounts,
    listing_sql,
    positions_at,
    prune_history,
    score_history,
    segment_counts,
    segment_sizes,
)


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
                "phase": scored.phase,
                "held_segment": scored.held_segment,
                "segment_candidate": scored.segment_candidate,
                "segment_candidate_since": scored.segment_candidate_since,
            },
        )


EventKey = tuple[str, str, str]  # (source, account id, event id): what dedup is scoped to

# The claim. `{batch}` is the batch's keys, all of them or (while rows from before migration
# 0010 are left) those not recorded under the unknown source ''. One of two constant texts.
_CLAIM = """
    WITH claimed AS (
        INSERT INTO processed_events (source, account_id, event_id)
        {batch}
        ON CONFLICT (source, account_id, event_id) DO NOTHING
        RETURNING source, account_id, event_id
    )
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS u(source, account_id, event_id)
    EXCEPT
    SELECT source, account_id, event_id FROM claimed
"""
_BATCH = "SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
CLAIM_SQL = _CLAIM.format(batch=_BATCH)
CLAIM_WITH_LEGACY_SQL = _CLAIM.format(
    batch=f"""{_BATCH} AS b(source, account_id, event_id)
        WHERE NOT EXISTS (
            SELECT 1 FROM processed_events p
            WHERE p.source = '' AND p.account_id = b.account_id AND p.event_id = b.event_id
        )"""
)


async def claim_new_events(
    *, conn: asyncpg.Connection, keys: Sequence[EventKey], legacy: bool = True
) -> set[EventKey]:
    """Record events as applied, each under its (source, account id, event id); return the
    keys that were applied before (almost always none: returning every fresh key made a row
    object for each event of the batch). Sorted, so that two partitions claiming the same
    keys cannot lock them in opposite orders. A key twice in `keys` is claimed once.

    `legacy`: rows recorded before migration 0010 may be left. Their source is unknown (''),
    so a key also counts as applied when ('', its account, its id) is. Without them the
    statement skips that probe (an index lookup per event)."""
    ordered = sorted(keys)
    rows = await conn.fetch(
        CLAIM_WITH_LEGACY_SQL if legacy else CLAIM_SQL,
        [k[0] for k in ordered],
        [k[1] for k in ordered],
        [k[2] for k in ordered],
    )
    return {(row["source"], row["account_id"], row["event_id"]) for row in rows}


async def has_legacy_ids(*, conn: asyncpg.Connection) -> bool:
    """Whether rows from before migration 0010 (source '') are left (read through the key)."""
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM processed_events WHERE source = '')")


async def prune_processed_events(
    *, conn: asyncpg.Connection, applied_before: datetime, limit: int
) -> int:
    """Delete up to `limit` processed ids applied before `applied_before`, oldest first,
    through the index on applied_at; returns how many. Rows another replica is deleting are
    skipped, not waited for."""
    status = await conn.execute(
        """
        DELETE FROM processed_events WHERE (source, account_id, event_id) IN (
            SELECT source, account_id, event_id FROM processed_events
            WHERE applied_at < $1
            ORDER BY applied_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        """,
        applied_before,
        limit,
    )
    return int(status.split()[-1])


async def lock_accounts(
    *, conn: asyncpg.Connection, account_ids: Iterable[str]
) -> dict[str, StoredAccount]:
    """Lock the accounts' rows, then read their scores.

    Two statements, because a statement that waited for a lock re-reads only the rows it
    locked: a scores row joined in the same statement would be the version from before the
    other transaction committed, and its stale published CS and OP would be saved back."""
    ids = sorted(set(account_ids))
    locked = await conn.fetch(
        """
        SELECT account_id, state::text AS state FROM accounts
        WHERE account_id = ANY($1::text[])
        ORDER BY account_id
        FOR UPDATE
        """,
        ids,
    )
    scores = await conn.fetch(
        """
        SELECT account_id, coalesce(published_cs, cs) AS cs, coalesce(published_op, op) AS op,
               segment, priority, features::text AS features, phase, held_segment,
               segment_candidate, segment_candidate_since
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
            "phase": row["phase"],
            "held_segment": row["held_segment"],
            "segment_candidate": row["segment_candidate"],
            "segment_candidate_since": row["segment_candidate_since"],
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
    # Score-history points to keep, oldest first: (at, cs, op, segment, priority, phase),
    # written with the row (kizashi.scoring.backfill; phase None on a backfill's past points).
    history: Sequence[tuple[datetime, float, float, str, str, int | None]] = ()
    # The relationship phase now and as last stored (None: the account's first score).
    phase: int = 0
    phase_before: int | None = None
    # The segment held with hysteresis, and the candidate waiting out min_dwell since when
    # (kizashi.scoring.segments; migration 0017). `segment` is what is published: the held
    # one, or insufficient_data.
    held_segment: str | None = None
    segment_candidate: str | None = None
    segment_candidate_since: datetime | None = None


async def save(*, conn: asyncpg.Connection, scored: Sequence[ScoredAccount]) -> None:
    """Upsert accounts and scores and add their score-history points and phase changes, in
    one statement (one round trip per batch). A point already kept at the same time (a past
    day that an earlier batch of the same backfill also ended) takes the newer, fuller value.
    A phase change is a move from the phase last stored (0 for a new account)."""
    if not scored:
        return
    scored = sorted(scored, key=lambda s: s.account_id)
    points = [(s.account_id, *point) for s in scored for point in s.history]
    moves = [s for s in scored if s.phase != (s.phase_before or 0)]
    await conn.execute(
        """
        WITH rows AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],
                                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                 $11::timestamptz[], $12::timestamptz[], $13::float8[],
                                 $14::float8[], $21::int2[], $27::text[], $28::text[],
                                 $29::timestamptz[])
                AS u(id, facts, state, cs, op, segment, priority, breakdown, features, version,
                     computed_at, next_check_at, published_cs, published_op, phase,
                     held_segment, segment_candidate, segment_candidate_since)
        ), saved_accounts AS (
            INSERT INTO accounts (account_id, facts, state, updated_at)
            SELECT id, facts::jsonb, state::json, now() FROM rows
            ON CONFLICT (account_id) DO UPDATE
            SET facts = EXCLUDED.facts, state = EXCLUDED.state, updated_at = now()
        ), saved_history AS (
            INSERT INTO score_history (account_id, at, cs, op, segment, priority, phase)
            SELECT * FROM unnest($15::text[], $16::timestamptz[], $17::float8[],
                                 $18::float8[], $19::text[], $20::text[], $22::int2[])
            ON CONFLICT (account_id, at) DO UPDATE
            SET cs = EXCLUDED.cs, op = EXCLUDED.op, segment = EXCLUDED.segment,
                priority = EXCLUDED.priority, phase = EXCLUDED.phase
        ), saved_moves AS (
            INSERT INTO phase_changes (account_id, at, from_phase, to_phase)
            SELECT * FROM unnest($23::text[], $24::timestamptz[], $25::int2[], $26::int2[])
            ON CONFLICT (account_id, at) DO UPDATE
            SET to_phase = EXCLUDED.to_phase
        )
        INSERT INTO scores (account_id, cs, op, segment, priority, breakdown, features,
                            config_version, computed_at, next_check_at, published_cs,
                            published_op, phase, held_segment, segment_candidate,
                            segment_candidate_since)
        SELECT id, cs, op, segment, priority, breakdown::json, features::json,
               version, computed_at, next_check_at, published_cs, published_op, phase,
               held_segment, segment_candidate, segment_candidate_since
        FROM rows
        ON CONFLICT (account_id) DO UPDATE
        SET cs = EXCLUDED.cs, op = EXCLUDED.op, segment = EXCLUDED.segment,
            priority = EXCLUDED.priority, breakdown = EXCLUDED.breakdown,
            features = EXCLUDED.features, config_version = EXCLUDED.config_version,
            computed_at = EXCLUDED.computed_at, next_check_at = EXCLUDED.next_check_at,
            published_cs = EXCLUDED.published_cs, published_op = EXCLUDED.published_op,
            phase = EXCLUDED.phase, held_segment = EXCLUDED.held_segment,
            segment_candidate = EXCLUDED.segment_candidate,
            segment_candidate_since = EXCLUDED.segment_candidate_since
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
        *([p[i] for p in points] for i in range(6)),
        [s.phase for s in scored],
        [p[6] for p in points],
        [s.account_id for s in moves],
        [s.computed_at for s in moves],
        [s.phase_before or 0 for s in moves],
        [s.phase for s in moves],
        [s.held_segment for s in scored],
        [s.segment_candidate for s in scored],
        [s.segment_candidate_since for s in scored],
    )


async def insert_observations(*, conn: asyncpg.Connection, rows: Sequence[tuple]) -> None:
    """Store rep observations, one statement per batch: (account id, observation id,
    occurred_at, received_at, author, kind, note, fields as JSON text). A redelivered one is
    already there and is left as it is."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    await conn.execute(
        """
        INSERT INTO observations (account_id, observation_id, occurred_at, received_at, author,
                                  kind, note, fields)
        SELECT a, i, o, r, w, k, n, f::jsonb
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[],
                    $6::text[], $7::text[], $8::text[]) AS u(a, i, o, r, w, k, n, f)
        ON CONFLICT (account_id, observation_id) DO NOTHING
        """,
        *([row[i] for row in rows] for i in range(8)),
    )


async def lock_due_accounts(
    *, conn: asyncpg.Connection, now: datetime, limit: int
) -> tuple[list[str], int]:
    """Lock up to `limit` accounts whose scores time alone may have moved (idle, settled
    accounts are not read), skipping those another transaction holds: a replica sweeping at
    the same time, or the consumer (which re-scores them anyway). So replicas split the due
    accounts instead of re-scoring them one after the other, and the sweep never waits.

    Returns the ids still due once locked, sorted, and how many were locked. The second
    statement reads the scores afresh: one that another sweep re-scored and committed just
    before the lock was taken is no longer due, and is left alone."""
    locked = await conn.fetch(
        """
        SELECT a.account_id FROM scores s JOIN accounts a USING (account_id)
        WHERE s.next_check_at <= $1
        ORDER BY s.next_check_at
        LIMIT $2
        FOR UPDATE OF a SKIP LOCKED
        """,
        now,
        limit,
    )
    if not locked:
        return [], 0
    due = await conn.fetch(
        """
        SELECT account_id FROM scores
        WHERE account_id = ANY($1::text[]) AND next_check_at <= $2
        ORDER BY account_id
        """,
        [row["account_id"] for row in locked],
        now,
    )
    return [row["account_id"] for row in due], len(locked)
