"""deliveries: the traceparent of the signal's trace

Revision ID: 0013_deliveries_traceparent
Revises: 0012_console_indexes

The notifier sends from a row its consumer committed; with tracing on, the row keeps the W3C
traceparent of the signal's trace so that the send span joins it (architecture §9.1). A
nullable column without a default: adding it rewrites nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_deliveries_traceparent"
down_revision = "0012_console_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("traceparent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "traceparent")
