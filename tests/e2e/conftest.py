import asyncio

import pytest

from tests.support.smtp_server import RecordingSmtpServer
from tests.support.stack import start_stack
from tests.support.webhook_server import RecordingWebhookServer


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
