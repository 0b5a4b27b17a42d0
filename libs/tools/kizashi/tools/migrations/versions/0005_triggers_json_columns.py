"""triggers: trigger_accounts.latest and cs_history as json, not jsonb

Revision ID: 0005_triggers_json_columns
Revises: 0004_scoring_json_columns

The triggers consumer rewrites both for every account a batch of scores.changed touches
(`latest` is the whole last message, a few kB), and reads them only whole, as text. As for
scoring's documents (0004), json keeps the text instead of building jsonb's binary form on
every write.
"""

from alembic import op

revision = "0005_triggers_json_columns"
down_revision = "0004_scoring_json_columns"
branch_labels = None
depends_on = None

COLUMNS = ("latest", "cs_history")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")


def _retype(kind: str) -> None:
    for column in COLUMNS:
        op.execute(
            f"ALTER TABLE trigger_accounts ALTER COLUMN {column} DROP DEFAULT, "
            f"ALTER COLUMN {column} TYPE {kind} USING {column}::{kind}"
        )
    op.execute(f"ALTER TABLE trigger_accounts ALTER COLUMN cs_history SET DEFAULT '[]'::{kind}")
