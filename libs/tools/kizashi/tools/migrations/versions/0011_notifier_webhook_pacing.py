"""notifier: one pace per Slack webhook, shared by every notifier replica

Revision ID: 0011_notifier_webhook_pacing
Revises: 0010_processed_events_scope

A row per webhook (keyed by a digest of its URL: the URL is a credential): when its next
message may go (`next_at`, moved one interval on by each send, atomically) and until when a
429 holds it (`paused_until`). Before, each process paced on its own, so two replicas sent
two messages a second to a webhook that takes one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_notifier_webhook_pacing"
down_revision = "0010_processed_events_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_pacing",
        sa.Column("webhook_key", sa.Text(), primary_key=True),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("webhook_pacing")
