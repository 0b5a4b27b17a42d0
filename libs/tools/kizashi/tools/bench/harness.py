"""What `kizashi bench e2e` and `kizashi soak` share: a whole stack started on the embedded
default (free ports, a temporary data folder), a local Slack stand-in that timestamps each
message as it arrives, a paced load generator, and readers for the services' /metrics.

Latency is measured inside one process on one clock (`time.monotonic`): from the moment
ingest answered 202 for the request that carried the triggering event, to the moment the
webhook receiver read the Slack message the event caused.
"""

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families

from kizashi.tools.bench.receiver import ALERT_OWNERS, AlertReceiver, routing_yaml
from kizashi.tools.embedded import EmbeddedPostgres, free_port
from kizashi.tools.settings import ToolSettings
from kizashi.tools.stack import SERVICES, client_credentials, read_stack
from kizashi.tools.stats import percentile  # noqa: F401  (the benches import it from here)

PORT_SETTINGS = (
    "INGEST_PORT",
    "SCORING_PORT",
    "TRIGGERS_PORT",
    "NOTIFIER_PORT",
    "CONSOLE_PORT",
    "EMBEDDED_POSTGRES_PORT",
    "EMBEDDED_BROKER_PORT",
    "DEV_WEBHOOK_PORT",
    "DEV_SMTP_PORT",
)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack and --receiver-port, for the commands that drive a whole stack."""
    parser.add_argument(
        "--stack",
        type=Path,
        default=None,
        help="data folder of a running `kizashi up` whose KIZASHI_SLACK_WEBHOOK_URL points at "
        "http://127.0.0.1:<--receiver-port>/slack (default: start one on the embedded default)",
    )
    parser.add_argument("--receiver-port", type=int, default=0)


# --- the stack -------------------------------------------------------------------------------


@dataclass
class StackHandle:
    urls: dict[str, str]
    ingest_key: str
    api_token: str
    data_dir: Path
    process: subprocess.Popen | None = None
    workdir: Path | None = None
    owners: int = 1  # webhooks the alerts are spread over (1 = the stack's default webhook)
    # Its PostgreSQL and broker, when the bench knows them (its own embedded stack, or the
    # configured servers of an attached one): "" otherwise.
    database_url: str = ""
    bootstrap_servers: str = ""

    def state(self) -> dict:
        return read_stack(self.data_dir) or {}

    def log_tail(self, chars: int = 4000) -> str:
        if self.workdir is None:
            return ""
        path = self.workdir / "stack.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def service_processes(self) -> dict[str, psutil.Process]:
        """The four services, the supervisor, and the embedded PostgreSQL and broker."""
        found: dict[str, psutil.Process] = {}
        state = self.state()
        for name, service in state.get("services", {}).items():
            with contextlib.suppress(psutil.Error, TypeError):
                found[name] = psutil.Process(service["pid"])
        with contextlib.suppress(psutil.Error, KeyError):
            supervisor = psutil.Process(state["pid"])
            found["supervisor"] = supervisor
            for child in supervisor.children():
                name = child.name()
                if name.startswith("postgres"):
                    found["postgres"] = child
                elif name.startswith("tansu"):
                    found["broker"] = child
        return found

    def rss_mib(self) -> dict[str, float]:
        """Resident memory per component. PostgreSQL's is the proportional set size summed over
        its processes: each backend's RSS counts the shared buffers again."""
        rss: dict[str, float] = {}
        for name, process in self.service_processes().items():
            try:
                if name == "postgres":
                    family = [process, *process.children(recursive=True)]
                    total = sum(p.memory_full_info().pss for p in family)
                else:
                    total = process.memory_info().rss
                rss[name] = total / 2**20
            except psutil.Error:
                continue
        return rss

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


async def start_embedded_stack(
    receiver: AlertReceiver, *, say=print, extra_env: dict[str, str] | None = None
) -> StackHandle:
    """`kizashi up` on the embedded default in a temporary folder, every port free, alerts to
    `receiver` (one webhook per alert owner), no SMTP."""
    workdir = Path(tempfile.mkdtemp(prefix="kizashi-bench-"))
    config_dir = workdir / "config"
    config_dir.mkdir()
    (config_dir / "routing.yaml").write_text(routing_yaml(receiver))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZASHI_")}
    ports = {name: free_port() for name in PORT_SETTINGS}
    env.update({f"KIZASHI_{name}": str(port) for name, port in ports.items()})
    env.update(
        {
            "KIZASHI_DATA_DIR": str(workdir / "data"),
            "KIZASHI_CONFIG_DIR": str(config_dir),
            "KIZASHI_SLACK_WEBHOOK_URL": receiver.url("/slack"),
            "KIZASHI_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    say(f"starting `kizashi up` on the embedded default in {workdir} …")
    process = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "kizashi.tools.cli", "up"],
        env=env,
        stdout=(workdir / "stack.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    urls = {name: f"http://127.0.0.1:{ports[f'{name.upper()}_PORT']}" for name in SERVICES}
    stack = StackHandle(urls, "", "", workdir / "data", process, workdir, owners=ALERT_OWNERS)
    stack.database_url = EmbeddedPostgres.url_for(ports["EMBEDDED_POSTGRES_PORT"])
    stack.bootstrap_servers = f"127.0.0.1:{ports['EMBEDDED_BROKER_PORT']}"
    try:
        await wait_ready(stack, within=180)
    except BaseException:
        stack.stop()
        raise
    key, token = client_credentials(ToolSettings(data_dir=stack.data_dir))
    stack.ingest_key, stack.api_token = key, token
    return stack


def attach_running_stack(data_dir: Path, settings: ToolSettings) -> StackHandle:
    """A stack already running under `kizashi up`, found through its data folder."""
    state = read_stack(data_dir)
    if not state:
        raise SystemExit(f"no running stack: {data_dir / 'stack.json'} does not exist")
    key, token = client_credentials(settings.model_copy(update={"data_dir": data_dir}))
    urls = {name: service["url"] for name, service in state["services"].items()}
    return StackHandle(
        urls,
        key,
        token,
        data_dir,
        database_url=settings.database_url or "",
        bootstrap_servers=settings.kafka_bootstrap_servers or "",
    )


async def wait_ready(stack: StackHandle, within: float) -> None:
    deadline = time.monotonic() + within
    pending = set(stack.urls)
    async with httpx.AsyncClient(timeout=2) as client:
        while pending:
            if stack.process is not None and stack.process.poll() is not None:
                raise RuntimeError(f"kizashi up exited:\n{stack.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready: {sorted(pending)}\n{stack.log_tail()}")
            for name in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{stack.urls[name]}/readyz")).status_code == 200:
                        pending.discard(name)
            await asyncio.sleep(0.3)


# --- metrics ---------------------------------------------------------------------------------


async def scrape(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """Every sample of a /metrics page summed over its labels, by sample name."""
    try:
        response = await client.get(f"{url}/metrics")
    except httpx.HTTPError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


@dataclass
class PipelineProgress:
    applied: float  # input events applied or skipped as duplicates by scoring
    lag: dict[str, float]  # kizashi_consumer_lag_records per service

    @property
    def total_lag(self) -> float:
        return sum(self.lag.values())


async def progress(client: httpx.AsyncClient, stack: StackHandle) -> PipelineProgress:
    pages = await asyncio.gather(*(scrape(client, url) for url in stack.urls.values()))
    by_service = dict(zip(stack.urls, pages, strict=True))
    scoring = by_service.get("scoring", {})
    applied = scoring.get("kizashi_scoring_events_applied_total", 0.0) + scoring.get(
        "kizashi_scoring_events_duplicate_total", 0.0
    )
    lag = {
        name: page.get("kizashi_consumer_lag_records", 0.0)
        for name, page in by_service.items()
        if name != "ingest"
    }
    return PipelineProgress(applied, lag)


# --- load ------------------------------------------------------------------------------------


@dataclass
class Workload:
    """Background usage over many accounts, and now and then a detractor survey on a fresh,
    pre-created account (the `detractor` rule fires once per account: one alert each)."""

    run_id: str
    accounts: int = 5000
    alert_every: int = 200
    owners: int = ALERT_OWNERS
    # An alert account's facts (name, owner) are sent this many alerts ahead of its survey:
    # they travel on another topic, so only time orders them before it.
    facts_lead: int = 500
    _events: int = 0
    _alerts: int = 0

    def first_facts(self) -> list[dict]:
        return [self.account_facts(n) for n in range(self.facts_lead)]

    def next_alert(self) -> tuple[list[dict], str]:
        """The triggering survey for the next alert account, and a later account's facts."""
        n = self._alerts
        self._alerts += 1
        return [self.survey(n), self.account_facts(n + self.facts_lead)], self.alert_account(n)

    def alert_account(self, n: int) -> str:
        return f"bench-{self.run_id}-a{n}"

    def owner_of(self, n: int) -> str:
        return f"@bench-owner-{n % self.owners}" if self.owners > 1 else "@bench-owner"

    def account_facts(self, n: int) -> dict:
        return {
            "type": "account_update",
            "account_id": self.alert_account(n),
            "event_id": f"{self.run_id}-f{n}",
            "name": self.alert_account(n),
            "owner_slack": self.owner_of(n),
            "plan": "Growth",
        }

    def survey(self, n: int) -> dict:
        return {
            "type": "survey_response",
            "account_id": self.alert_account(n),
            "event_id": f"{self.run_id}-s{n}",
            "survey_id": "bench",
            "nps": 2,
        }

    def batch(self, size: int, *, alerts: bool = True) -> tuple[list[dict], list[str]]:
        events, alert_events, alert_accounts = self.batch_apart(size, alerts=alerts)
        return events + alert_events, alert_accounts

    def batch_apart(
        self, size: int, *, alerts: bool = True
    ) -> tuple[list[dict], list[dict], list[str]]:
        """The usage events, the alerting events, and the alert accounts, apart."""
        events, alert_events, alert_accounts = [], [], []
        for _ in range(size):
            self._events += 1
            if alerts and self.alert_every and self._events % self.alert_every == 0:
                more, account = self.next_alert()
                alert_events.extend(more)
                alert_accounts.append(account)
                continue
            account = self._events % self.accounts
            events.append(
                {
                    "type": "product_usage",
                    "account_id": f"bench-{self.run_id}-u{account}",
                    "event_id": f"{self.run_id}-e{self._events}",
                    "user_id": f"user{self._events % 7}",
                    "action": "feature_used",
                    "feature": ("reports", "alerts", "exports", "search")[self._events % 4],
                }
            )
        return events, alert_events, alert_accounts


@dataclass
class LoadStats:
    sent: int = 0
    accepted: int = 0
    refused: int = 0  # 503s (retried) and other non-2xx answers
    errors: int = 0
    # account → monotonic time ingest answered 202 for its triggering event
    alert_accepted_at: dict[str, float] = field(default_factory=dict)
    # account → the trace id its triggering request was sent with (LoadGenerator.trace_alerts)
    alert_traces: dict[str, str] = field(default_factory=dict)


class LoadGenerator:
    """Sends `rate` events a second as `requests_per_s` batches, a bounded number in flight.
    A request answered 503 is sent again with the same event ids, as a client should."""

    def __init__(
        self,
        stack: StackHandle,
        workload: Workload,
        stats: LoadStats,
        *,
        requests_per_s: float = 20,
        in_flight: int = 16,
    ) -> None:
        self.stack, self.workload, self.stats = stack, workload, stats
        self.requests_per_s = requests_per_s
        # When set, alerting events go in requests of their own, each with a sampled
        # traceparent (kizashi.tools.bench.hops); the other requests carry none.
        self.trace_alerts = False
        self._slots = asyncio.Semaphore(in_flight)
        self._tasks: set[asyncio.Task] = set()
        self._client = httpx.AsyncClient(
            base_url=stack.urls["ingest"],
            headers={"Authorization": f"Bearer {stack.ingest_key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
        )

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def post(self, events: list[dict], alert_accounts: list[str]) -> None:
        body = orjson.dumps({"events": events})
        headers = {"Content-Type": "application/json"}
        if self.trace_alerts and alert_accounts:
            # A sampled W3C traceparent of its own: this request's path is one trace.
            trace_id = secrets.token_hex(16)
            headers["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-01"
            for account in alert_accounts:
                self.stats.alert_traces[account] = trace_id
        for _attempt in range(20):
            try:
                response = await self._client.post("/v1/events", content=body, headers=headers)
            except httpx.HTTPError:
                self.stats.errors += 1
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 202:
                now = time.monotonic()
                self.stats.accepted += response.json()["accepted"]
                for account in alert_accounts:
                    self.stats.alert_accepted_at[account] = now
                return
            self.stats.refused += 1
            if response.status_code != 503:
                return
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    async def _post_in_slot(self, events: list[dict], alert_accounts: list[str]) -> None:
        try:
            await self.post(events, alert_accounts)
        finally:
            self._slots.release()

    async def run(self, rate: float, seconds: float) -> float:
        """Drive `rate` events/s for `seconds`; returns the rate actually sent."""
        interval = 1.0 / self.requests_per_s
        started = time.monotonic()
        sent_at_start = self.stats.sent
        next_tick = started
        while (now := time.monotonic()) < started + seconds:
            owed = int(rate * (now - started)) - (self.stats.sent - sent_at_start)
            while owed > 0:
                size = min(owed, 1000)
                owed -= size
                events, alert_events, alert_accounts = self.workload.batch_apart(size)
                self.stats.sent += len(events) + len(alert_events)
                if self.trace_alerts:
                    requests = [(events, []), (alert_events, alert_accounts)]
                else:
                    requests = [(events + alert_events, alert_accounts)]
                for request_events, accounts in requests:
                    if not request_events:
                        continue
                    await self._slots.acquire()  # back-pressure: never more than in_flight
                    task = asyncio.create_task(self._post_in_slot(request_events, accounts))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            next_tick += interval
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        elapsed = time.monotonic() - started
        return (self.stats.sent - sent_at_start) / elapsed

    async def settle(self) -> None:
        """Wait for every request in flight to be answered."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


ALERT_ACCOUNT = re.compile(r"bench-[0-9a-z]+-a\d+")


def alert_latencies(
    receiver: AlertReceiver, accepted_at: dict[str, float], since: int = 0
) -> dict[str, float]:
    """account → seconds from ingest's 202 to the account's first Slack message."""
    first: dict[str, float] = {}
    for arrival in receiver.arrivals[since:]:
        match = ALERT_ACCOUNT.search(arrival.text)
        if match and match.group(0) in accepted_at and match.group(0) not in first:
            first[match.group(0)] = arrival.at - accepted_at[match.group(0)]
    return first


def machine_description() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.1f} GiB RAM, Python {sys.version.split()[0]}"
