"""accounts: an index on the owner, for the console's "my accounts"

Revision ID: 0012_console_indexes
Revises: 0011_notifier_webhook_pacing

The console's map, segments and account list filter accounts by owner (the lower-cased
`owner_email` fact, the expression of kizashi.console.repository.accounts._ACCOUNT_OWNER); without
an index each of them read every account's facts (150 ms and more at 100,000 accounts).
Built concurrently, so a running stack keeps writing meanwhile. (0010 is another branch's;
the integrator re-chains.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_console_indexes"
down_revision = "0011_notifier_webhook_pacing"
branch_labels = None
depends_on = None

INDEXES = {
    "accounts_owner": "accounts (lower(facts ->> 'owner_email'))",
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, what in INDEXES.items():
            invalid = op.get_bind().scalar(
                sa.text(
                    "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
                ),
                {"name": name},
            )
            if invalid:  # an interrupted concurrent build: build it again
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {what}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
