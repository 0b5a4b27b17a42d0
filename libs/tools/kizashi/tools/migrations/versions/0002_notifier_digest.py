"""notifier digests: deliveries batched into one message per (receiver, owner, window)

Revision ID: 0002_notifier_digest
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_notifier_digest"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("digest_key", sa.Text(), nullable=True))
    op.create_index(
        "deliveries_digest",
        "deliveries",
        ["digest_key", "status"],
        unique=False,
        postgresql_where=sa.text("digest_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("deliveries_digest", table_name="deliveries")
    op.drop_column("deliveries", "digest_key")
