"""The pace of each Slack webhook, shared by every notifier replica through PostgreSQL.

Slack takes about one message a second per incoming webhook. Each send takes the webhook's
next slot from its `webhook_pacing` row (`next_at` moved one interval on, atomically: see
pacing_sql.take_webhook_slot) and waits for it, so N replicas together still send one message
an interval, not N. A 429 pauses the webhook for every replica (`paused_until`).
"""

import asyncio
import hashlib

from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.notifier.repository import pacing as pacing_sql
from kizashi.runtime.db import raw_transaction


def webhook_key(url: str) -> str:
    """The row's key: a digest of the URL, never the URL (a webhook URL is a credential)."""
    return hashlib.sha256(url.encode()).hexdigest()


class SharedPacer:
    """At most one message every `1 / rate` seconds per webhook, across replicas."""

    def __init__(self, engine: AsyncEngine, rate: float = 1.0) -> None:
        self.engine = engine
        self.interval_s = 1.0 / rate

    async def paused_for(self, url: str) -> float:
        async with raw_transaction(self.engine) as conn:
            return await pacing_sql.webhook_paused_for(conn=conn, webhook_key=webhook_key(url))

    async def acquire(self, url: str) -> None:
        async with raw_transaction(self.engine) as conn:
            wait_s, _ = await pacing_sql.take_webhook_slot(
                conn=conn, webhook_key=webhook_key(url), interval_s=self.interval_s
            )
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def pause(self, url: str, seconds: float) -> None:
        async with raw_transaction(self.engine) as conn:
            await pacing_sql.pause_webhook(conn=conn, webhook_key=webhook_key(url), seconds=seconds)
