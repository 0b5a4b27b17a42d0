"""The notifier's SQL for the customer playbooks' emails (`customer_emails`,
`customer_unsubscribes`; kizashi.notifier.customer and .unsubscribe). Keyword-only functions
on a connection the caller holds in a transaction."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg

# Rows that count against a customer's frequency cap: sent, or on their way.
_COUNTED = "('sent', 'sending', 'pending')"


async def current_contacts(
    *, conn: asyncpg.Connection, account_ids: Sequence[str]
) -> dict[str, dict]:
    """The contacts of these accounts as scoring holds them now, by account id (read only,
    like `current_owner`): one statement for a whole batch of signals. An account scoring
    has not seen is absent."""
    rows = await conn.fetch(
        """
        SELECT account_id, facts->>'contact_email' AS contact_email,
               facts->>'contact_name' AS contact_name
        FROM accounts WHERE account_id = ANY($1::text[])
        """,
        sorted(set(account_ids)),
    )
    fields = ("contact_email", "contact_name")
    return {row["account_id"]: {k: row[k] for k in fields} for row in rows}


async def reserve_customer_email(
    *,
    conn: asyncpg.Connection,
    delivery_id: str,
    account_id: str,
    contact_email: str,
    since: datetime,
) -> tuple[bool, list[datetime]]:
    """Hold the customer's place before a send: (unsubscribed, when the customer's other
    counted emails since `since` were recorded). One customer at a time (a transaction lock
    on the address and one on the account), so two deliveries never both pass the cap; the
    caller inserts or suppresses in the same transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('customer-email:' || $1::text, 0)),"
        " pg_advisory_xact_lock(hashtextextended('customer-account:' || $2::text, 0))",
        contact_email,
        account_id,
    )
    unsubscribed = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM customer_unsubscribes WHERE contact_email = $1)",
        contact_email,
    )
    earlier = await conn.fetch(
        f"""
        SELECT COALESCE(sent_at, created_at) AS at FROM customer_emails
        WHERE (account_id = $1 OR contact_email = $2) AND delivery_id <> $3
          AND status IN {_COUNTED} AND COALESCE(sent_at, created_at) > $4
        """,
        account_id,
        contact_email,
        delivery_id,
        since,
    )
    return bool(unsubscribed), [r["at"] for r in earlier]


async def record_customer_email(
    *,
    conn: asyncpg.Connection,
    delivery_id: str,
    signal_id: str,
    account_id: str,
    contact_email: str,
    playbook: str,
    template: str,
    status: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Insert or update the row of one delivery's customer email (a retry updates it)."""
    await conn.execute(
        """
        INSERT INTO customer_emails (delivery_id, signal_id, account_id, contact_email,
                                     playbook, template, status, reason, created_at, sent_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::text, $8, $9::timestamptz,
                CASE WHEN $7::text = 'sent' THEN $9::timestamptz END)
        ON CONFLICT (delivery_id) DO UPDATE SET
            status = EXCLUDED.status, reason = EXCLUDED.reason,
            contact_email = EXCLUDED.contact_email, template = EXCLUDED.template,
            sent_at = COALESCE(EXCLUDED.sent_at, customer_emails.sent_at)
        """,
        delivery_id,
        signal_id,
        account_id,
        contact_email,
        playbook,
        template,
        status,
        reason,
        now,
    )


async def unsubscribe(
    *,
    conn: asyncpg.Connection,
    contact_email: str,
    account_id: str | None,
    delivery_id: str | None,
    now: datetime,
) -> bool:
    """Record that this address wants no more customer emails; False when it already had."""
    inserted = await conn.fetchval(
        """
        INSERT INTO customer_unsubscribes (contact_email, account_id, delivery_id,
                                           unsubscribed_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (contact_email) DO NOTHING
        RETURNING true
        """,
        contact_email,
        account_id,
        delivery_id,
        now,
    )
    return bool(inserted)


async def customer_email_of(*, conn: asyncpg.Connection, delivery_id: str) -> dict | None:
    row = await conn.fetchrow(
        "SELECT account_id, contact_email FROM customer_emails WHERE delivery_id = $1",
        delivery_id,
    )
    return None if row is None else dict(row)


async def customer_emails(*, conn: asyncpg.Connection, account_id: str, limit: int) -> list[dict]:
    """An account's customer emails, newest first, each with whether its address has since
    unsubscribed."""
    rows = await conn.fetch(
        """
        SELECT e.delivery_id, e.signal_id, e.account_id, e.contact_email, e.playbook,
               e.template, e.status, e.reason, e.created_at, e.sent_at,
               u.unsubscribed_at
        FROM customer_emails e
        LEFT JOIN customer_unsubscribes u ON u.contact_email = e.contact_email
        WHERE e.account_id = $1
        ORDER BY e.created_at DESC, e.delivery_id
        LIMIT $2
        """,
        account_id,
        limit,
    )
    return [dict(r) for r in rows]
