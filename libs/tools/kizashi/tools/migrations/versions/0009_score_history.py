"""score_history: every published score, for the console's charts and map trails

Revision ID: 0009_score_history
Revises: 0008_console_users

One row per published score (and per past day a backfill tells about): CS, OP, segment,
priority and the time. Keyed by (account_id, at); `at` alone is indexed for pruning by age.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_score_history"
down_revision = "0008_console_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "score_history",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cs", sa.Float(), nullable=False),
        sa.Column("op", sa.Float(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "at"),
    )
    op.create_index("score_history_at", "score_history", ["at"])


def downgrade() -> None:
    op.drop_table("score_history")
