"""Which account a tracked user belongs to: links from Segment `identify`/`group` calls, kept in
PostgreSQL (ingest's own table, kizashi.ingest.repository) with a bounded in-memory LRU in
front.

Lookups are set-based: one query per request for all the users the cache does not know.
"""

from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.ingest import repository
from kizashi.runtime.db import raw_transaction, retry_transient

DEFAULT_CAPACITY = 100_000


class LinkCache:
    """user_id → account_id, least recently used first out."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._links: OrderedDict[str, str] = OrderedDict()

    def get(self, user_id: str) -> str | None:
        account = self._links.get(user_id)
        if account is not None:
            self._links.move_to_end(user_id)
        return account

    def put(self, user_id: str, account_id: str) -> None:
        self._links[user_id] = account_id
        self._links.move_to_end(user_id)
        while len(self._links) > self.capacity:
            self._links.popitem(last=False)

    def __len__(self) -> int:
        return len(self._links)


class Identities:
    def __init__(self, engine: AsyncEngine, capacity: int = DEFAULT_CAPACITY) -> None:
        self.engine = engine
        self.cache = LinkCache(capacity)

    async def lookup(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The accounts of those users that have one (cache first, then one query)."""
        found: dict[str, str] = {}
        missing: list[str] = []
        for user_id in set(user_ids):
            account = self.cache.get(user_id)
            if account is None:
                missing.append(user_id)
            else:
                found[user_id] = account
        if missing:

            async def query() -> dict[str, str]:
                async with raw_transaction(self.engine) as connection:
                    return await repository.accounts_of_users(conn=connection, user_ids=missing)

            for user_id, account_id in (await retry_transient(query)).items():
                found[user_id] = account_id
                self.cache.put(user_id, account_id)
        return found

    async def remember(self, links: dict[str, str]) -> None:
        """Store links (the last one per user wins); unchanged links cost no write."""
        changed = {u: a for u, a in links.items() if self.cache.get(u) != a}
        if not changed:
            return

        async def upsert() -> None:
            async with raw_transaction(self.engine) as connection:
                await repository.save_user_accounts(conn=connection, links=changed)

        await retry_transient(upsert)
        for user_id, account_id in changed.items():
            self.cache.put(user_id, account_id)
