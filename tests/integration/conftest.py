"""Fixtures several integration modules share: a scoring service of the module's own (its
own database on the session's PostgreSQL server and its own broker: tests.integration.
scoring_support). Module-scoped: each module that asks gets its own."""

import pytest

from tests.integration.scoring_support import private_scoring, scoring_service


@pytest.fixture(scope="module")
async def servers(database_url, workdir):
    async with private_scoring(database_url, workdir) as found:
        yield found


@pytest.fixture(scope="module")
async def service(servers):
    async with scoring_service(servers) as running:
        yield running
