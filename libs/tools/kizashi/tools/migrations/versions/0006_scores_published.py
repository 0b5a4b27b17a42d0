"""scores: the CS and OP last published in scores.changed

Revision ID: 0006_scores_published
Revises: 0005_triggers_json_columns

`changes.min_points` counts from the scores last published, so that a slow slide is published
once it adds up, instead of never when every single re-score moves less than the threshold.
Existing rows keep NULL: scoring reads NULL as the row's own scores, the closest record of
what was last published, so the upgrade rewrites nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_scores_published"
down_revision = "0005_triggers_json_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scores", sa.Column("published_cs", sa.Float(), nullable=True))
    op.add_column("scores", sa.Column("published_op", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("scores", "published_op")
    op.drop_column("scores", "published_cs")
