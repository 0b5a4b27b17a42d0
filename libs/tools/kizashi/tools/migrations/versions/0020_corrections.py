"""signals: the figures a rule read when it fired, for corrections

Revision ID: 0020_corrections
Revises: 0018_rep_budget

Late events may show that a sent signal's condition did not hold when it fired (issue #20).
For `usage_drop` that takes the usage counters as of the firing, which nothing else keeps:
`measures` holds them (json, e.g. {"usage_7d": 2.1, "usage_28d": 20.4}), only for the rules
that need them, null for every other signal. A nullable column without a default: adding it
rewrites nothing.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0020_corrections"
down_revision = "0018_rep_budget"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("signals", sa.Column("measures", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("signals", "measures")
