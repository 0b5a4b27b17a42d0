"""The scoring service's tables. It alone writes them; other services may read."""

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    # CRM facts as last set by account_update events (a copy of what `state` holds, for reads).
    Column("facts", JSONB, nullable=False, server_default="{}"),
    # The order-independent feature state (see kizashi.scoring.features). json, not jsonb,
    # here and in scores: rewritten on every batch and only read whole (migration 0004).
    Column("state", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# The console's "my accounts" (migration 0012): its repository filters on this expression.
Index("accounts_owner", func.lower(accounts.c.facts["owner_email"].astext))

scores = Table(
    "scores",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("cs", Float, nullable=False),
    Column("op", Float, nullable=False),
    Column("segment", Text, nullable=False),
    Column("priority", Text, nullable=False),
    # CS and OP as last published in scores.changed: `changes.min_points` counts from these,
    # so small moves add up (migration 0006). Segment and priority need no copy: any change
    # of theirs is published.
    Column("published_cs", Float, nullable=True),
    Column("published_op", Float, nullable=True),
    Column("breakdown", JSON, nullable=False),
    Column("features", JSON, nullable=False),
    Column("config_version", Text, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    # The relationship phase (kizashi.runtime.phases) when it was scored (migration 0014).
    Column("phase", SmallInteger, nullable=False, server_default="0"),
    # When time alone (decay, a window edge, the calendar) can next move this account's scores.
    Column("next_check_at", DateTime(timezone=True), nullable=True),
    # The segment held with hysteresis, and the candidate waiting out segments.min_dwell
    # since when (kizashi.scoring.segments; migration 0017). NULL held: a row from before.
    Column("held_segment", Text, nullable=True),
    Column("segment_candidate", Text, nullable=True),
    Column("segment_candidate_since", DateTime(timezone=True), nullable=True),
    Index("scores_next_check_at", "next_check_at"),
    Index("scores_segment_cs", "segment", "cs", "account_id"),
    Index("scores_segment_op", "segment", "op", "account_id"),
    # The accounts list without a segment filter (migration 0007).
    Index("scores_cs", "cs", "account_id"),
    Index("scores_op", "op", "account_id"),
)

processed_events = Table(
    "processed_events",
    metadata,
    # The idempotency key: an event id is applied at most once per (source, account), in its
    # effect's transaction (migration 0010). `source` is the ingest key's name; '' for rows
    # from before 0010, whose source was not recorded.
    Column("source", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Pruning reads the oldest rows through it (kizashi.scoring.dedup).
    Index("processed_events_applied_at", "applied_at"),
)

score_history = Table(
    "score_history",
    metadata,
    # Every published score (and a backfill's past points, kizashi.scoring.backfill), kept for
    # KIZASHI_SCORE_HISTORY_RETENTION_DAYS. The key serves one account's history by time and
    # the positions as of a time (one probe per account).
    Column("account_id", Text, primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("cs", Float, nullable=False),
    Column("op", Float, nullable=False),
    Column("segment", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("phase", SmallInteger, nullable=True),  # null: scored before migration 0014
    # The pruning job deletes by age.
    Index("score_history_at", "at"),
)

observations = Table(
    "observations",
    metadata,
    # Every accepted rep_observation (issue #18), one row per (account, event id) so that a
    # redelivery is one row. The kind's structured fields are in `fields`.
    Column("account_id", Text, primary_key=True),
    Column("observation_id", Text, primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("author", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("fields", JSONB, nullable=False),
    # One account's timeline and evidence; one author's observations in a period (KPIs).
    Index("observations_account_time", "account_id", text("occurred_at DESC")),
    Index("observations_author_time", "author", "occurred_at"),
)

phase_changes = Table(
    "phase_changes",
    metadata,
    # One row each time an account's relationship phase moves (the managers' KPIs).
    Column("account_id", Text, primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("from_phase", SmallInteger, nullable=False),
    Column("to_phase", SmallInteger, nullable=False),
    Index("phase_changes_at", "at"),
)
