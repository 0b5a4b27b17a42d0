"""segments that do not flap, snooze unless worse: the segment held, the snooze's measures

Revision ID: 0017_segment_hold
Revises: 0020_corrections

Issue #20, items 1 and 2. Columns added, nullable, nothing rewritten:
- scores.held_segment, segment_candidate, segment_candidate_since: the segment an account
  holds with hysteresis and the candidate waiting out `segments.min_dwell` since when
  (kizashi.scoring.segments). NULL on rows from before: the published segment is held.
- signals.snooze_measures: each measure a rule may watch (CS, usage) as it stood when the
  signal was snoozed (kizashi.triggers.worse); NULL when not snoozed. A partial index finds
  the snoozed signals of a batch's accounts that watch a measure.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0017_segment_hold"
down_revision = "0020_corrections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scores", sa.Column("held_segment", sa.Text(), nullable=True))
    op.add_column("scores", sa.Column("segment_candidate", sa.Text(), nullable=True))
    op.add_column(
        "scores", sa.Column("segment_candidate_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("signals", sa.Column("snooze_measures", JSONB(), nullable=True))
    op.create_index(
        "signals_snoozed_watching",
        "signals",
        ["account_id"],
        postgresql_where=sa.text("status = 'snoozed' AND snooze_measures IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("signals_snoozed_watching", table_name="signals")
    op.drop_column("signals", "snooze_measures")
    op.drop_column("scores", "segment_candidate_since")
    op.drop_column("scores", "segment_candidate")
    op.drop_column("scores", "held_segment")
