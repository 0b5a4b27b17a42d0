"""observations, phase_changes, and the phase on scores and score_history (issue #18)

Revision ID: 0014_observations
Revises: 0013_deliveries_traceparent

`observations`: every accepted `rep_observation`, written by scoring as it consumes the topic
(keyed by account and event id, so a redelivery is one row). The kind's structured fields are
in `fields`. Read by scoring (scores and phases), the console (timeline, phase panel, KPIs).

`phase_changes`: one row each time an account's relationship phase moves, for the managers'
KPIs (moves in a period, time spent in each phase).

`scores.phase` and `score_history.phase`: the account's phase when it was scored.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_observations"
down_revision = "0013_deliveries_traceparent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("observation_id", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "observation_id"),
    )
    op.create_index(
        "observations_account_time", "observations", ["account_id", sa.text("occurred_at DESC")]
    )
    op.create_index("observations_author_time", "observations", ["author", "occurred_at"])
    op.create_table(
        "phase_changes",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_phase", sa.SmallInteger(), nullable=False),
        sa.Column("to_phase", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "at"),
    )
    op.create_index("phase_changes_at", "phase_changes", ["at"])
    op.add_column(
        "scores", sa.Column("phase", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.add_column("score_history", sa.Column("phase", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("score_history", "phase")
    op.drop_column("scores", "phase")
    op.drop_table("phase_changes")
    op.drop_table("observations")
