"""outcomes: renewals, churn, expansions and contractions, with a date and an amount

Revision ID: 0016_outcomes
Revises: 0015_signal_feedback

Issue #19, item 2. Triggers writes them: from account_updates (which scoring reads into
outcomes on scores.changed) and from its outcome API (the console's form goes through it).
GET /v1/rules/{name}/performance reads them against signals by account and time: an
opportunity is won when an expansion follows within the window, a churn risk confirmed when
churn or a contraction does, averted when the account renews. A new table: nothing rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_outcomes"
down_revision = "0015_signal_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("outcome_id", sa.Text(), primary_key=True),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("outcomes_account_occurred", "outcomes", ["account_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("outcomes_account_occurred", table_name="outcomes")
    op.drop_table("outcomes")
