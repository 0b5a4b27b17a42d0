"""The ingest service's one table: which account a tracked user belongs to.

Segment's `identify` and `group` calls link a user to an account; later `track` and `page`
calls of that user that name no account resolve through this link (see kizashi.ingest.segment).
"""

from sqlalchemy import Column, DateTime, MetaData, Table, Text, func

metadata = MetaData()

user_accounts = Table(
    "ingest_user_accounts",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
