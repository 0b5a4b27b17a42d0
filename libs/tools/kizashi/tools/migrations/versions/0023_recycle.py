"""recycle: why an opportunity was resolved, and the recycle list of "not now" accounts

Revision ID: 0023_recycle
Revises: 0016_outcomes

Issue #21, item 3. Resolving an opportunity takes a reason, kept on the signal (two nullable
columns: nothing rewritten). The "not now" reasons put the account on the recycle list, a new
table, until the sweep (a due time) or the consumer (an OP rise) returns it as a new
opportunity. Two partial indexes serve those two probes; a third the list by account.
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_recycle"
down_revision = "0016_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("signals", sa.Column("resolution", sa.Text(), nullable=True))
    op.add_column("signals", sa.Column("resolution_months", sa.Integer(), nullable=True))
    op.create_table(
        "recycle",
        sa.Column("signal_id", sa.Text(), primary_key=True),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("months", sa.Integer(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("return_to", sa.Text(), nullable=True),
        sa.Column("returns_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fiscal_year_known", sa.Boolean(), nullable=True),
        sa.Column("op_at_set", sa.Float(), nullable=True),
        sa.Column("op_target", sa.Float(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False, server_default="waiting"),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "recycle_waiting_due",
        "recycle",
        ["returns_at"],
        postgresql_where=sa.text("status = 'waiting' AND returns_at IS NOT NULL"),
    )
    op.create_index(
        "recycle_waiting_op",
        "recycle",
        ["account_id"],
        postgresql_where=sa.text("status = 'waiting' AND op_target IS NOT NULL"),
    )
    op.create_index("recycle_account", "recycle", ["account_id"])


def downgrade() -> None:
    for index in ("recycle_account", "recycle_waiting_op", "recycle_waiting_due"):
        op.drop_index(index, table_name="recycle")
    op.drop_table("recycle")
    op.drop_column("signals", "resolution_months")
    op.drop_column("signals", "resolution")
