"""processed_events: event ids are unique per (source, account), not globally

Revision ID: 0010_processed_events_scope
Revises: 0009_score_history

The dedup key was `event_id` alone, so a second account (or a second ingest key) that used an
id another had used, `evt-1` say, had its event dropped as a duplicate. The key is now
(source, account_id, event_id), where `source` is the name of the ingest key the event came in
with (DESIGN §4).

Existing rows: which ingest key their event came in with was never stored. They get the
source '' ("unknown"), and while any such row is left scoring also checks a new event against
('', its account, its id), so an event applied before this upgrade is still not applied again
when it is re-sent through any key (kizashi.scoring.repository.claim_new_events). They are
pruned with the rest once older than the dedup window (35 days by default), and the check
stops when none is left.

The new key's index is built concurrently and then made the primary key, so a populated table
is locked only for the swap. A scoring process of the previous version fails its batches from
the swap on (its ON CONFLICT names the old key) and retries them until the new version runs.

Downgrade: ids used by more than one (source, account) keep one row (the earliest applied),
since the old key allows one; `source` is dropped.
"""

from alembic import op

revision = "0010_processed_events_scope"
down_revision = "0009_score_history"
branch_labels = None
depends_on = None

NEW_KEY = "processed_events_scope_key"


def upgrade() -> None:
    # A constant default fills existing rows without rewriting the table (PostgreSQL ≥ 11);
    # scoring always writes the source, so the default goes once the rows have it.
    # IF NOT EXISTS: the column is committed before the index build, so a run interrupted
    # after it finds it there.
    op.execute(
        "ALTER TABLE processed_events ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT ''"
    )
    op.execute("ALTER TABLE processed_events ALTER COLUMN source DROP DEFAULT")
    with op.get_context().autocommit_block():
        # An interrupted concurrent build leaves an invalid index behind: build it again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NEW_KEY}")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY {NEW_KEY} "
            "ON processed_events (source, account_id, event_id)"
        )
    op.execute("ALTER TABLE processed_events DROP CONSTRAINT processed_events_pkey")
    op.execute(
        f"ALTER TABLE processed_events ADD CONSTRAINT processed_events_pkey "
        f"PRIMARY KEY USING INDEX {NEW_KEY}"
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM processed_events p
        USING processed_events q
        WHERE p.event_id = q.event_id
          AND (p.applied_at, p.source, p.account_id) > (q.applied_at, q.source, q.account_id)
        """
    )
    op.execute("ALTER TABLE processed_events DROP CONSTRAINT processed_events_pkey")
    op.create_primary_key("processed_events_pkey", "processed_events", ["event_id"])
    op.drop_column("processed_events", "source")
