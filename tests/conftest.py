"""Session-wide real servers: one PostgreSQL database and one broker for the whole run."""

import warnings
from pathlib import Path

import pytest

from tests.support import infra

warnings.filterwarnings("ignore", module="platformdirs")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kizashi")


@pytest.fixture(scope="session")
def database_url(workdir: Path):
    with infra.postgres(workdir) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_broker(workdir: Path):
    with infra.broker(workdir) as server:
        yield server


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_broker) -> str:
    return kafka_broker if isinstance(kafka_broker, str) else kafka_broker.bootstrap_servers
