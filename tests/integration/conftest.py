"""Fixtures several integration modules share, module-scoped (each module that asks gets its
own): a scoring service (its own database on the session's PostgreSQL server and its own
broker: tests.integration.scoring_support), and triggers' consumer and sweep state on a
database and broker of the module's own."""

from pathlib import Path

import pytest

from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.triggers.rules import load_rules_config
from kizashi.triggers.settings import TriggersSettings
from kizashi.triggers.state import TriggersState
from tests.integration.scoring_support import private_scoring, scoring_service
from tests.support import infra


@pytest.fixture(scope="module")
async def servers(database_url, workdir):
    async with private_scoring(database_url, workdir) as found:
        yield found


@pytest.fixture(scope="module")
async def service(servers):
    async with scoring_service(servers) as running:
        yield running


@pytest.fixture(scope="module")
async def own_database(database_url: str, request: pytest.FixtureRequest):
    """A database of the module's own (named after it) on the session's PostgreSQL server."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    async with infra.scratch_database(database_url, f"kizashi_{name}") as url:
        yield url


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory):
    with infra.broker(Path(tmp_path_factory.mktemp("own-broker"))) as server:
        yield server if isinstance(server, str) else server.bootstrap_servers


@pytest.fixture(scope="module")
async def triggers(own_database: str, own_broker: str):
    """Triggers' consumer and sweep state (with a producer), run with the test's own clock."""
    settings = TriggersSettings(database_url=own_database, kafka_bootstrap_servers=own_broker)
    runtime = await ServiceRuntime.start("triggers", settings)
    yield TriggersState(runtime=runtime, rules=load_rules_config(None))
    await runtime.stop()
