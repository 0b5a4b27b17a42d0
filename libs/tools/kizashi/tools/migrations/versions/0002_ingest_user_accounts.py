"""ingest: user → account links remembered from Segment identify/group calls

Revision ID: 0002_ingest_user_accounts
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_ingest_user_accounts"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_user_accounts",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("ingest_user_accounts")
