"""Who may author a rep_observation: an enabled user (the console's `users` table, read-only).
One query per request, for every author the request names; no cache, so a user disabled on
the console stops authoring at once."""

from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.ingest import repository
from kizashi.runtime.db import raw_transaction, retry_transient


async def known_authors(engine: AsyncEngine, emails: Collection[str]) -> set[str]:
    """Those of `emails` that are enabled users."""
    if not emails:
        return set()
    wanted = sorted(emails)

    async def query() -> set[str]:
        async with raw_transaction(engine) as connection:
            return await repository.known_users(conn=connection, emails=wanted)

    return await retry_transient(query)
