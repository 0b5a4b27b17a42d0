"""customer_emails, customer_unsubscribes: what the customer playbooks sent, and who said stop

Revision ID: 0021_customer_emails
Revises: 0023_recycle

Issue #20, item 5 (the renewal playbook; issue #21's support_surge reuses it). The notifier
writes both: one row per customer email it sent, or held back (unsubscribed, over the
frequency cap), keyed by the delivery that carried it; and one row per address that followed
its unsubscribe link. New tables: nothing rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_customer_emails"
down_revision = "0023_recycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_emails",
        sa.Column("delivery_id", sa.Text(), primary_key=True),
        sa.Column("signal_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("contact_email", sa.Text(), nullable=False),
        sa.Column("playbook", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("customer_emails_account", "customer_emails", ["account_id", "created_at"])
    op.create_index("customer_emails_contact", "customer_emails", ["contact_email", "created_at"])
    op.create_table(
        "customer_unsubscribes",
        sa.Column("contact_email", sa.Text(), primary_key=True),
        sa.Column("account_id", sa.Text(), nullable=True),
        sa.Column("delivery_id", sa.Text(), nullable=True),
        sa.Column(
            "unsubscribed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("customer_unsubscribes")
    op.drop_index("customer_emails_contact", table_name="customer_emails")
    op.drop_index("customer_emails_account", table_name="customer_emails")
    op.drop_table("customer_emails")
