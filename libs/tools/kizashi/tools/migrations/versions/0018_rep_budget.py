"""deliveries: each immediate route's delivery counted against its owner's daily budget

Revision ID: 0018_rep_budget
Revises: 0021_customer_emails

Issue #20, item 3. The notifier's consumer decides, per (receiver, owner, UTC day), whether an
alert goes at once or waits for the owner's next digest (kizashi.contracts.budget). The
decision is stored on the delivery row, so every replica reads the same day's tally from the
rows themselves (`budget_key`, `budgeted`, `alert_rank`), a replayed signal is not counted
twice, and a restart forgets nothing. Nullable columns without defaults and a partial index:
nothing rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_rep_budget"
down_revision = "0021_customer_emails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("budget_key", sa.Text(), nullable=True))
    op.add_column("deliveries", sa.Column("budgeted", sa.Text(), nullable=True))
    op.add_column("deliveries", sa.Column("alert_rank", sa.Float(), nullable=True))
    op.create_index(
        "deliveries_budget",
        "deliveries",
        ["budget_key"],
        postgresql_where=sa.text("budget_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("deliveries_budget", table_name="deliveries")
    op.drop_column("deliveries", "alert_rank")
    op.drop_column("deliveries", "budgeted")
    op.drop_column("deliveries", "budget_key")
