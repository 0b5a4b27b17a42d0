"""signals: the current feedback on each signal, and an index to read a rule's signals by time

Revision ID: 0015_signal_feedback
Revises: 0014_observations

A rep marks a signal useful or not useful (issue #19). Every answer is a row of
signal_actions (action 'feedback', detail {useful, reason, channel}): that is the history.
The last answer is also kept on the signal itself, so that a rule's precision is one pass over
its signals. Nullable columns without defaults: adding them rewrites nothing. The index on
(rule, fired_at) serves GET /v1/rules/{name}/performance and the console's rules page.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_signal_feedback"
down_revision = "0014_observations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("signals", sa.Column("feedback_useful", sa.Boolean(), nullable=True))
    op.add_column("signals", sa.Column("feedback_reason", sa.Text(), nullable=True))
    op.add_column("signals", sa.Column("feedback_by", sa.Text(), nullable=True))
    op.add_column("signals", sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("signals_rule_fired", "signals", ["rule", "fired_at"])


def downgrade() -> None:
    op.drop_index("signals_rule_fired", table_name="signals")
    for column in ("feedback_at", "feedback_by", "feedback_reason", "feedback_useful"):
        op.drop_column("signals", column)
