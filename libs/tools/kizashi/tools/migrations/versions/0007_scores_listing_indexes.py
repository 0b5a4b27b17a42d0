"""scores: indexes for the accounts list without a segment filter

Revision ID: 0007_scores_listing_indexes
Revises: 0006_scores_published

`GET /v1/accounts?order=-op` (the default order) and the same filtered by priority only had
no index to read in order: every page sorted the whole table (68 ms at 100,000 accounts,
growing with it). Built concurrently, so a running stack keeps writing scores meanwhile.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_scores_listing_indexes"
down_revision = "0006_scores_published"
branch_labels = None
depends_on = None

INDEXES = {"scores_cs": ["cs", "account_id"], "scores_op": ["op", "account_id"]}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            # An interrupted concurrent build leaves an invalid index behind, which IF NOT
            # EXISTS would keep for good: drop it and build again.
            invalid = op.get_bind().scalar(
                sa.text(
                    "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
                ),
                {"name": name},
            )
            if invalid:
                op.drop_index(name, "scores", postgresql_concurrently=True)
            op.create_index(
                name, "scores", columns, postgresql_concurrently=True, if_not_exists=True
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, "scores", postgresql_concurrently=True, if_exists=True)
