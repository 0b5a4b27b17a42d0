"""triggers: when each account is next due for the time-driven rules' sweep

Revision ID: 0003_triggers_next_sweep
Revises: 0002_ingest_user_accounts, 0002_notifier_digest
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_triggers_next_sweep"
# Also the merge point of the two 0002 branches.
down_revision = ("0002_ingest_user_accounts", "0002_notifier_digest")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "trigger_accounts",
        sa.Column("next_sweep_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("trigger_accounts_next_sweep", "trigger_accounts", ["next_sweep_at"])
    # Accounts seen before this revision are swept once, which schedules their next time.
    op.execute("UPDATE trigger_accounts SET next_sweep_at = now()")


def downgrade() -> None:
    op.drop_index("trigger_accounts_next_sweep", table_name="trigger_accounts")
    op.drop_column("trigger_accounts", "next_sweep_at")
