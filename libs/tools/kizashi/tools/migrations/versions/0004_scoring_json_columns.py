"""scoring: state, breakdown and features as json, not jsonb

Revision ID: 0004_scoring_json_columns
Revises: 0003_triggers_next_sweep

The scoring consumer rewrites these three documents for every account a batch touches, and
they are only ever read whole (as text). jsonb builds a binary tree on every write: in
`kizashi bench scoring` that was half the cost of the batch upsert. json only checks the
syntax and keeps the text.
"""

from alembic import op

revision = "0004_scoring_json_columns"
down_revision = "0003_triggers_next_sweep"
branch_labels = None
depends_on = None

COLUMNS = (("accounts", "state"), ("scores", "breakdown"), ("scores", "features"))


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")


def _retype(kind: str) -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind} USING {column}::{kind}")
