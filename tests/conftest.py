"""Session-wide real servers, each started only when a test asks for it: one PostgreSQL
database and one broker for the whole run, a recording Slack webhook and SMTP server, and a
whole stack under `kizashi up` (fixture `stack`)."""

import asyncio
import functools
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.support import infra
from tests.support.smtp_server import RecordingSmtpServer
from tests.support.stack import start_stack
from tests.support.webhook_server import RecordingWebhookServer

warnings.filterwarnings("ignore", module="platformdirs")


def pytest_configure(config: pytest.Config) -> None:
    """A private base folder for this session's temporary files, unless one was given.

    Run as root, the tests' embedded PostgreSQL runs as an unprivileged user (PostgreSQL
    refuses root). Under pytest's shared /tmp/pytest-of-<user>, which every pytest session
    that uses tmp_path makes private again (0700), a second session started meanwhile locked
    the first one's server out of its own data folder, and it died at its next DROP DATABASE.
    """
    if config.option.basetemp is None:
        folder = tempfile.mkdtemp(prefix="kizashi-pytest-")
        config.option.basetemp = folder
        config.add_cleanup(functools.partial(shutil.rmtree, folder, ignore_errors=True))


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


@pytest.fixture(scope="session")
async def webhook():
    server = RecordingWebhookServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def smtp():
    server = RecordingSmtpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def stack(workdir, database_url, bootstrap_servers, webhook, smtp):
    """The four services under `kizashi up`, on the session's PostgreSQL and broker."""
    running = await asyncio.to_thread(
        start_stack,
        workdir,
        database_url=database_url,
        bootstrap_servers=bootstrap_servers,
        slack_webhook_url=webhook.url("/slack"),
        smtp_url=smtp.url,
    )
    yield running
    code = await asyncio.to_thread(running.stop)
    assert code == 0, f"kizashi up exited with {code}:\n{running.log()}"


@pytest.fixture(scope="session")
async def browser():
    """Debian's Chromium (never a downloaded one) under Playwright, for the console's tests."""
    from playwright.async_api import async_playwright

    from tests.support.console import CHROMIUM_ARGS, chromium_path

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()
