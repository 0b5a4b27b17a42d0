"""Session-wide real servers, each started only when a test asks for it: one PostgreSQL
database and one broker for the whole run, a recording Slack webhook and SMTP server, and a
whole stack under `kizashi up` (fixture `stack`)."""

import asyncio
import functools
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.support import infra
from tests.support.smtp_server import RecordingSmtpServer
from tests.support.stack import (
    CRM_WEBHOOK_PATH,
    CRM_WEBHOOK_SECRET,
    CUSTOM_KINDS,
    SETTLE_FAST_RULES,
    STACK_ROUTING,
    start_stack,
)
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
def database_url(workdir: Path, broker_flavour: str):
    with infra.postgres(workdir, f"pg-{broker_flavour}") as url:
        yield url


# The suites that run once per broker flavour (KIZASHI_TEST_BROKER, see tests.support.infra).
PER_FLAVOUR = ("e2e", "faults")
# Of the end-to-end modules, those whose outcome depends on the broker run on Apache Kafka
# too; the others exercise one service's API (accounts, limits, OpenAPI fuzzing, SDKs,
# Prometheus, logs, `kizashi up`) and run on the embedded broker only, to keep CI short.
KAFKA_E2E = ("test_event_to_alert", "test_ingest_duplicates", "test_signals_lifecycle")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each fault test and each broker-dependent end-to-end test (KAFKA_E2E) once per broker
    flavour, every other test that uses the session's servers on the embedded broker. Each
    flavour has a world of its own (database, broker, webhook and SMTP recorders, stack),
    started once for the whole session: a run on one flavour never sees what a run on the
    other left behind."""
    if "broker_flavour" not in metafunc.fixturenames:
        return
    path = Path(metafunc.definition.path)
    per_flavour = path.parent.name in PER_FLAVOUR
    flavours = infra.broker_flavours() if per_flavour else ["embedded"]
    if path.parent.name == "e2e" and path.stem not in KAFKA_E2E:
        flavours = [f for f in flavours if f != "kafka"] or ["embedded"]
    if metafunc.definition.get_closest_marker("kafka_only"):
        # Nothing to run when only the embedded broker was asked for (reported as skipped).
        flavours = [f for f in flavours if f == "kafka"]
    metafunc.parametrize("broker_flavour", flavours, indirect=True, scope="session")


def pytest_report_header(config: pytest.Config) -> str:
    flavours = infra.broker_flavours()
    line = f"kizashi brokers for e2e and faults: {', '.join(flavours)}"
    if "kafka" in flavours:
        missing = infra.kafka_missing()
        line += f" ({infra.describe_kafka()})" if missing is None else f" -- {missing}"
    return line


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """Say loudly, at the end, that the Apache Kafka runs did not happen."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "Apache Kafka runs SKIPPED" in str(report.longrepr)
    ]
    if skipped:
        why = infra.kafka_missing() or "see the skip reasons"
        terminalreporter.write_sep("!", "APACHE KAFKA RUNS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(skipped)} end-to-end/fault tests did NOT run against Apache Kafka: {why}",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def broker_flavour(request: pytest.FixtureRequest) -> str:
    """ "embedded" (Tansu) or "kafka" (a three-node Apache Kafka cluster)."""
    return getattr(request, "param", "embedded")


@pytest.fixture(scope="session")
def kafka_broker(workdir: Path, broker_flavour: str):
    with infra.broker(workdir, broker_flavour) as server:
        yield server


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_broker) -> str:
    return kafka_broker if isinstance(kafka_broker, str) else kafka_broker.bootstrap_servers


@pytest.fixture(scope="session")
async def webhook(broker_flavour: str):
    server = RecordingWebhookServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def smtp(broker_flavour: str):
    server = RecordingSmtpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def stack(workdir, database_url, bootstrap_servers, broker_flavour, webhook, smtp):
    """The four services under `kizashi up`, on the session's PostgreSQL and broker. Its
    KIZASHI_CONFIG_DIR holds an observations.yaml adding a custom kind
    (tests.support.stack.CUSTOM_KINDS), a rules.yaml settling backfills in a second
    (SETTLE_FAST_RULES), and a routing.yaml that is the packaged default plus a signed webhook
    for one test's owner (STACK_ROUTING); every other file is the packaged default."""
    config_dir = workdir / "stack-config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "observations.yaml").write_text(CUSTOM_KINDS, encoding="utf-8")
    (config_dir / "rules.yaml").write_text(SETTLE_FAST_RULES, encoding="utf-8")
    (config_dir / "routing.yaml").write_text(STACK_ROUTING, encoding="utf-8")
    webhook.verify_signatures(CRM_WEBHOOK_PATH, CRM_WEBHOOK_SECRET)
    running = await asyncio.to_thread(
        start_stack,
        workdir,
        database_url=database_url,
        bootstrap_servers=bootstrap_servers,
        slack_webhook_url=webhook.url("/slack"),
        smtp_url=smtp.url,
        extra_env={
            "KIZASHI_CONFIG_DIR": str(config_dir),
            "KIZASHI_WEBHOOK_URL": webhook.url(CRM_WEBHOOK_PATH),
            "KIZASHI_WEBHOOK_SECRET": CRM_WEBHOOK_SECRET,
        },
    )
    if not os.environ.get("KIZASHI_TEST_KAFKA_BOOTSTRAP_SERVERS"):
        # Each service told the broker's flavour apart by itself (KIZASHI_KAFKA_FLAVOUR=auto).
        told = running.log_path.read_text(errors="replace").count(f" is {broker_flavour}")
        assert told >= 4, f"not every service saw a {broker_flavour} broker:\n{running.log()}"
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
