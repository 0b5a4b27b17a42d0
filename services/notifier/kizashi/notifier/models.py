"""The notifier service's tables. It alone writes them."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    # Deterministic from (signal, receiver): at most one message per pair, across replays.
    Column("delivery_id", Text, primary_key=True),
    Column("signal_id", Text, nullable=False, index=True),
    Column("receiver", Text, nullable=False),
    Column("channel", Text, nullable=False),
    # pending → sending → sent | failed. The intent is recorded before the send.
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    # Set when the route batches signals: "<receiver>|<owner>|<window end, epoch s>". Every
    # delivery with one key goes out as one digest message and ends sent/failed together.
    Column("digest_key", Text, nullable=True),
    # The W3C traceparent of the signal's trace, when tracing is on: the worker's send span
    # joins it (kizashi.runtime.tracing).
    Column("traceparent", Text, nullable=True),
    # The daily budget per rep (kizashi.contracts.budget; migration 0018): for a delivery of
    # an immediate route to an owner, "<receiver>|<owner>|<UTC day>", whether it went at once
    # ("immediate") or waits in the owner's digest ("deferred"), and its rank (ARR × severity).
    Column("budget_key", Text, nullable=True),
    Column("budgeted", Text, nullable=True),
    Column("alert_rank", Float, nullable=True),
    Index("deliveries_due", "status", "next_attempt_at"),
    Index(
        "deliveries_digest",
        "digest_key",
        "status",
        postgresql_where=text("digest_key IS NOT NULL"),
    ),
    Index("deliveries_budget", "budget_key", postgresql_where=text("budget_key IS NOT NULL")),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("delivery_id", Text, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("outcome", Text, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
)

# The pace of each Slack webhook, shared by every replica (kizashi.notifier.pacing). The key
# is a digest of the webhook's URL: the URL is a credential and is never stored.
webhook_pacing = Table(
    "webhook_pacing",
    metadata,
    Column("webhook_key", Text, primary_key=True),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("paused_until", DateTime(timezone=True), nullable=True),
)

# The customer playbooks' emails (kizashi.notifier.customer): one row per email sent to a
# customer's contact, or held back (`suppressed`: unsubscribed, over the frequency cap), keyed
# by the delivery that carried it. `sending` and `pending` rows count against the cap.
customer_emails = Table(
    "customer_emails",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("signal_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    # Stored lower-case, as the unsubscribe list and the frequency cap compare it.
    Column("contact_email", Text, nullable=False),
    Column("playbook", Text, nullable=False),
    Column("template", Text, nullable=False),
    # sending → sent | pending (a retry) | failed; or suppressed, with its reason.
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Index("customer_emails_account", "account_id", "created_at"),
    Index("customer_emails_contact", "contact_email", "created_at"),
)

# Addresses that followed an unsubscribe link: no customer email goes to them again.
customer_unsubscribes = Table(
    "customer_unsubscribes",
    metadata,
    Column("contact_email", Text, primary_key=True),
    Column("account_id", Text, nullable=True),
    Column("delivery_id", Text, nullable=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
