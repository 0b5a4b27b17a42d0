"""`kizashi up`: the embedded servers (when not configured), migrations, the console's first
admin (when there is nobody), then the services, each its own process, restarted when it dies.

Ctrl-C or SIGTERM stops it cleanly (architecture §6.1). On the embedded broker, whose log is in
memory: ingest stops taking events (503 with Retry-After), then the supervisor waits, bounded
by KIZASHI_DRAIN_TIMEOUT_S and showing progress, until scoring, triggers and the notifier have
consumed and committed everything and the notifier has sent its due deliveries
(kizashi.tools.drain); only then it stops the services, then the broker and PostgreSQL. A
second Ctrl-C stops at once."""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from kizashi.tools.devinbox import DevInbox
from kizashi.tools.drain import BacklogProbe, close_intake, wait_until_drained
from kizashi.tools.embedded import EmbeddedBroker, EmbeddedPostgres, port_open
from kizashi.tools.localkafka import KafkaNotInstalled, LocalKafka
from kizashi.tools.migrate import upgrade
from kizashi.tools.settings import ToolSettings
from kizashi.tools.stack import SERVICES, ensure_credentials, write_stack
from kizashi.tools.users import ADMIN_PASSWORD_KEY, ensure_first_admin

MAX_RESTART_DELAY_S = 30.0
# `kizashi up`'s exit code when a stop on the embedded broker may have lost accepted events.
NOT_DRAINED_EXIT = 1


def _prepare_child() -> None:
    """Linux: a service process ends when `kizashi up` ends, even on SIGKILL. It starts with
    SIGUSR1 ignored, so that the signal closing ingest's intake cannot kill a process that has
    not installed its handler yet (kizashi.ingest.intake)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def local_trial_env(settings: ToolSettings) -> dict[str, str]:
    """What `kizashi up` sets for its local trial when the environment does not: the customer
    emails' unsubscribe links point at this machine's notifier. The notifier itself refuses
    to guess it (a playbook on, SMTP set: kizashi.notifier.playbooks.unreachable_unsubscribe)."""
    if settings.notifier_public_url:
        return {}
    return {"KIZASHI_NOTIFIER_PUBLIC_URL": f"http://127.0.0.1:{settings.notifier_port}"}


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


@dataclass
class Stack:
    settings: ToolSettings
    say: callable = print
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | LocalKafka | None = None
    # `kizashi up --broker`: "embedded" (Tansu, memory) or "kafka" (one local Apache Kafka).
    broker_kind: str = "embedded"
    inbox: DevInbox | None = None
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by a second Ctrl-C/SIGTERM: stop at once, without waiting for the drain.
    hurry: asyncio.Event = field(default_factory=asyncio.Event)
    # The console's first admin, made when there was nobody (kizashi.tools.users).
    admin: str = ""
    admin_made: bool = False

    def prepare(self) -> None:
        """Embedded servers, credentials and migrations: everything before the services."""
        settings = self.settings
        if not (settings.slack_webhook_url or settings.smtp_url):
            self.inbox = DevInbox(
                settings.data_dir.resolve() / "inbox",
                settings.dev_webhook_port,
                settings.dev_smtp_port,
            )
        self.check_config_files()
        data_dir = settings.data_dir.resolve()
        env = dict(os.environ)
        env.update(ensure_credentials(settings))
        env["KIZASHI_DATA_DIR"] = str(data_dir)
        env.update(local_trial_env(settings))
        if not settings.database_url:
            self.postgres = EmbeddedPostgres(
                data_dir, _free_or_fail(settings.embedded_postgres_port, "PostgreSQL")
            )
            self.say(f"starting embedded PostgreSQL (data in {self.postgres.pgdata}) …")
            self.postgres.start()
            env["KIZASHI_DATABASE_URL"] = self.postgres.url
        if settings.kafka_bootstrap_servers and self.broker_kind == "kafka":
            raise SystemExit(
                "kizashi up: --broker kafka starts a local Kafka, but "
                "KIZASHI_KAFKA_BOOTSTRAP_SERVERS names one already; unset one of them"
            )
        if self.broker_kind == "kafka":
            port = _free_or_fail(settings.embedded_broker_port, "broker")
            self.broker = LocalKafka(data_dir, port)
            self.say(f"starting Apache Kafka (one node, log in {self.broker.folder}) …")
            try:
                self.broker.start()
            except KafkaNotInstalled as error:
                raise SystemExit(f"kizashi up: {error}") from None
            env["KIZASHI_KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
        elif not settings.kafka_bootstrap_servers:
            self.broker = EmbeddedBroker(
                data_dir, _free_or_fail(settings.embedded_broker_port, "broker")
            )
            self.say(
                "starting embedded Kafka-compatible broker (Tansu, memory storage: a clean stop "
                "waits until everything in it is consumed; a crash loses what is in flight) …"
            )
            self.broker.start()
            env["KIZASHI_KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
        self.say("running database migrations …")
        upgrade(env["KIZASHI_DATABASE_URL"])
        self.admin, self.admin_made = ensure_first_admin(settings, env["KIZASHI_DATABASE_URL"])
        self.env = env

    def check_config_files(self) -> None:
        """Read every config file as its service will, before anything starts: a bad file stops
        `kizashi up` with one message naming the file, the key and the problem, instead of four
        services exiting and restarting in a loop. Raises ConfigFileError."""
        from kizashi.ingest.segment_config import load_segment_config
        from kizashi.notifier.routing import load_routing_config_for
        from kizashi.runtime.observation_kinds import load_observation_config
        from kizashi.runtime.phases import load_phase_config
        from kizashi.scoring.config import load_scoring_config
        from kizashi.triggers.rules import load_rules_config

        settings = self.settings
        if self.inbox is not None:  # the notifier will run with the stand-ins' addresses
            settings = settings.model_copy(
                update={
                    "slack_webhook_url": SecretStr(self.inbox.slack_webhook_url),
                    "smtp_url": SecretStr(self.inbox.smtp_url),
                }
            )
        # The services log their own warnings (a receiver disabled, …) when they start.
        logging.disable(logging.WARNING)
        try:
            load_segment_config(settings.config_dir)
            load_phase_config(settings.config_dir)
            load_observation_config(settings.config_dir)
            load_scoring_config(settings.config_dir)
            load_rules_config(settings.config_dir)
            load_routing_config_for(settings)
        finally:
            logging.disable(logging.NOTSET)

    async def start_inbox(self) -> None:
        if self.inbox is None:
            return
        await self.inbox.start()
        self.env["KIZASHI_SLACK_WEBHOOK_URL"] = self.inbox.slack_webhook_url
        self.env["KIZASHI_SMTP_URL"] = self.inbox.smtp_url

    async def spawn(self, service: ServiceProcess) -> None:
        service.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kizashi.tools.cli",
            "serve",
            service.name,
            env=self.env,
            start_new_session=True,
            preexec_fn=_prepare_child,
        )
        service.started_at = time.monotonic()
        self.write_state()

    async def watch(self, service: ServiceProcess) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            await self.spawn(service)
            assert service.process is not None
            code = await service.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - service.started_at > 60:
                delay = 1.0
            service.restarts += 1
            self.say(f"{service.name} exited with code {code}; restarting in {delay:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    async def watch_health(self, interval_s: float = 10, strikes: int = 3) -> None:
        """A process that answers /healthz 503 (a consumer stuck with records waiting) a few
        times in a row is restarted, as an orchestrator's liveness probe would."""
        failures = dict.fromkeys(self.services, 0)
        async with httpx.AsyncClient(timeout=5) as client:
            while not self.stopping.is_set():
                await asyncio.sleep(interval_s)
                if self.stopping.is_set():
                    return  # no restarts while the stop drains the pipeline
                for name, service in self.services.items():
                    try:
                        response = await client.get(
                            f"http://{self.settings.host}:{service.port}/healthz"
                        )
                        failures[name] = failures[name] + 1 if response.status_code == 503 else 0
                    except httpx.TimeoutException:
                        failures[name] += 1  # a blocked event loop answers nothing at all
                    except httpx.HTTPError:
                        failures[name] = 0  # starting or restarting: watch() handles exits
                    if failures[name] >= strikes and service.process is not None:
                        self.say(f"{name} is not making progress; restarting it")
                        service.process.terminate()
                        failures[name] = 0

    def write_state(self) -> None:
        host = self.settings.host
        write_stack(
            self.settings.data_dir,
            {
                "pid": os.getpid(),
                "embedded_database": self.postgres is not None,
                "embedded_broker": self.broker is not None,
                "services": {
                    name: {
                        "url": f"http://{host}:{s.port}",
                        "pid": s.process.pid if s.process else None,
                        "restarts": s.restarts,
                    }
                    for name, s in self.services.items()
                },
                "inbox": None
                if self.inbox is None
                else {"slack": str(self.inbox.slack_file), "email": str(self.inbox.email_file)},
            },
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_stop_signal)
        await self.start_inbox()
        self.services = {
            name: ServiceProcess(name, self.settings.port_of(name)) for name in SERVICES
        }
        watchers = [asyncio.create_task(self.watch(s)) for s in self.services.values()]
        watchers.append(asyncio.create_task(self.watch_health()))
        # Ctrl-C works while the services are still starting, not only once they are ready.
        announce = asyncio.create_task(self._announce())
        await self.stopping.wait()
        announce.cancel()
        drained = await self.drain()
        self.say("stopping the services …")
        await self._stop_services()
        for watcher in watchers:
            watcher.cancel()
        if self.inbox is not None:
            await self.inbox.stop()
        # Non-zero when the stop may have lost accepted events, so that a script or a service
        # manager can tell; the log says what was left.
        return 0 if drained else NOT_DRAINED_EXIT

    def _on_stop_signal(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.say("\nstopping … (Ctrl-C again to stop at once)")
        elif not self.hurry.is_set():
            self.hurry.set()
            lost = (
                "; what the embedded broker still holds is lost"
                if isinstance(self.broker, EmbeddedBroker)
                else ""
            )
            self.say(f"second Ctrl-C: stopping at once, without waiting{lost}")

    async def drain(self) -> bool:
        """Close ingest's intake, then wait until the pipeline has consumed and committed
        everything: the embedded broker's log dies with it. Apache Kafka (external, or
        `--broker kafka`) keeps its log, so there the services just stop (consumers resume
        from their offsets). False when the stop may lose accepted events: the drain was cut
        short (its limit, a second Ctrl-C) or its backlog could not be read."""
        limit = self.settings.drain_timeout_s
        if not isinstance(self.broker, EmbeddedBroker) or limit <= 0:
            return True  # nothing to drain, or KIZASHI_DRAIN_TIMEOUT_S=0 asked not to wait
        if self.hurry.is_set():
            self.say("not drained (second Ctrl-C); what the embedded broker holds is lost")
            return False
        self.say("closing ingest: events are answered 503 with Retry-After from now on")
        ingest = self.services["ingest"]
        readyz = f"http://{self.settings.host}:{ingest.port}/readyz"
        if not await close_intake(ingest.process, readyz, self.hurry):
            if self.hurry.is_set():
                self.say("not drained (second Ctrl-C); what the embedded broker holds is lost")
                return False
            self.say("ingest did not confirm that it closed; stopping it")
            await _terminate(ingest.process)
        probe = BacklogProbe(self.broker.bootstrap_servers, self.env["KIZASHI_DATABASE_URL"])
        try:
            left = await wait_until_drained(probe, limit_s=limit, say=self.say, hurry=self.hurry)
        finally:
            await probe.close()
        if left is not None and left.empty():
            self.say("drained: scoring, triggers and the notifier committed everything")
            return True
        what = left.describe() if left is not None else "unknown (the backlog could not be read)"
        reason = "second Ctrl-C" if self.hurry.is_set() else f"limit of {limit:.0f} s reached"
        self.say(
            f"not drained ({reason}); left: {what}. Records not yet consumed are lost with the "
            "embedded broker's memory; pending deliveries stay in PostgreSQL for the next start"
        )
        return False

    async def _announce(self) -> None:
        host = self.settings.host
        ready = await _wait_ready({n: f"http://{host}:{s.port}" for n, s in self.services.items()})
        self.say("")
        for name, service in self.services.items():
            state = "ready" if ready.get(name) else "starting"
            what = "the web app" if name == "console" else "API at /openapi.json"
            self.say(f"  {name:<9} http://{host}:{service.port}  ({state}; {what})")
        creds = self.settings.data_dir.resolve() / "credentials.env"
        self.say(f"\n  keys and API token: {creds}")
        console = f"http://{host}:{self.services['console'].port}"
        if self.admin_made:
            self.say(
                f"  console: sign in at {console} as {self.admin}; the password is "
                f"{ADMIN_PASSWORD_KEY} in {creds}"
            )
        else:
            self.say(f"  console: sign in at {console} (`kizashi users add` adds people)")
        if self.inbox is not None:
            self.say(
                f"  alerts: no Slack or SMTP configured, so they are printed here and kept in "
                f"{self.inbox.directory}"
            )
        self.say("\nKizashi is up. Try `kizashi demo` in another terminal; Ctrl-C stops it all.")

    async def _stop_services(self) -> None:
        """SIGTERM to each, then SIGKILL to those still running after 15 s, or at once on a
        second Ctrl-C."""
        processes = [s.process for s in self.services.values() if s.process]
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        exited = asyncio.ensure_future(asyncio.gather(*(p.wait() for p in processes)))
        hurry = asyncio.ensure_future(self.hurry.wait())
        await asyncio.wait({exited, hurry}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        hurry.cancel()
        for process in processes:
            if process.returncode is None:
                process.kill()
        await exited

    def shutdown_servers(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


async def _wait_ready(urls: dict[str, str], timeout_s: float = 90) -> dict[str, bool]:
    ready = dict.fromkeys(urls, False)
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while not all(ready.values()) and time.monotonic() < deadline:
            for name, url in urls.items():
                if not ready[name]:
                    with contextlib.suppress(httpx.HTTPError):
                        ready[name] = (await client.get(f"{url}/readyz")).status_code == 200
            await asyncio.sleep(0.5)
    return ready


async def _terminate(process: asyncio.subprocess.Process | None, wait_s: float = 15) -> None:
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), wait_s)
    except TimeoutError:
        process.kill()
        await process.wait()


def _free_or_fail(port: int, what: str) -> int:
    if port_open(port):
        raise SystemExit(
            f"port {port} for the embedded {what} is taken: is another `kizashi up` running?"
        )
    return port


def up(settings: ToolSettings, broker: str = "embedded") -> int:
    stack = Stack(settings, broker_kind=broker)
    try:
        stack.prepare()
        return asyncio.run(stack.run())
    finally:
        # The services are stopped; another Ctrl-C must not leave PostgreSQL half stopped.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if stack.broker is not None or stack.postgres is not None:
                stack.say("stopping the embedded broker and PostgreSQL …")
            stack.shutdown_servers()
        finally:
            signal.signal(signal.SIGINT, previous)
        Path(settings.data_dir / "stack.json").unlink(missing_ok=True)
