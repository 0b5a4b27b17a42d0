"""A whole Kizashi stack for end-to-end tests, started the way a user starts it: `kizashi up`
as a separate process, pointed at the test's PostgreSQL, broker, webhook and SMTP servers, or
(`database_url`/`bootstrap_servers` None) at its own embedded ones under its data folder."""

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from kizashi.tools.embedded import EmbeddedPostgres, free_port
from kizashi.tools.stack import read_stack

SERVICES = ("ingest", "scoring", "triggers", "notifier", "console")


@dataclass
class RunningStack:
    process: subprocess.Popen
    data_dir: Path
    urls: dict[str, str]
    ingest_key: str
    api_token: str
    log_path: Path
    database_url: str = ""
    # The environment `kizashi up` was started with (a test starts extra replicas with it).
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers={"Authorization": f"Bearer {self.api_token}"}, timeout=15)

    def ingest(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.urls["ingest"],
            headers={"Authorization": f"Bearer {self.ingest_key}"},
            timeout=15,
        )

    def state(self) -> dict:
        return read_stack(self.data_dir) or {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    async def post_events(self, events: list[dict]) -> dict:
        async with self.ingest() as client:
            response = await client.post("/v1/events", json={"events": events})
        assert response.status_code == 202, response.text
        return response.json()

    async def get(self, service: str, path: str, **params) -> httpx.Response:
        async with self.api() as client:
            return await client.get(f"{self.urls[service]}{path}", params=params)

    async def wait_for(self, probe, *, within: float = 30, interval: float = 0.25):
        """Poll an async `probe` until it returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            result = await probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within} s; stack log:\n{self.log()}")
            await asyncio.sleep(interval)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# The test stacks' rules.yaml: the packaged rules, but an account's history counts as settled
# after a second rather than a minute (docs/signals.md#history-arriving), so a test that sends
# backdated usage sees inactivity within its wait.
SETTLE_FAST_RULES = """\
backfill:
  settle: 1s
"""

# The shared stack's observations.yaml (tests/conftest.py): the packaged kinds plus a custom
# one, so the end-to-end tests see a team's own kind go through ingest, scoring and the console.
CUSTOM_KINDS = """\
kinds:
  site_visit:
    label: Site visit
    hint: "You walked the customer's site: what did you see?"
    fields:
      visited_on: {type: date, required: true, label: Visited on}
      machines_seen: {type: number, label: Machines seen}
      state: {type: choice, choices: [new, worn, failing], required: true, label: State}
      summary: {type: text, max_length: 80, label: Summary}
      escorted: {type: boolean, label: Escorted}
"""
# The session stack's routing.yaml: the packaged default's receivers and default route, and a
# signed `webhook` receiver (CRM_WEBHOOK_PATH on the recording server, which verifies it)
# for the one owner of tests/e2e/test_logs_secrets.py, so the secrets' paths are all taken.
CRM_WEBHOOK_PATH = "/crm/T0KEN-session/hook"
CRM_WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
STACK_ROUTING = """\
receivers:
  - {name: slack, type: slack, webhook_url_env: KIZASHI_SLACK_WEBHOOK_URL}
  - {name: email, type: email, to: account_owner}
  - {name: crm, type: webhook, url_env: KIZASHI_WEBHOOK_URL, secret_env: KIZASHI_WEBHOOK_SECRET}
routes:
  - name: the secrets test's owner, to the signed webhook too
    match: {owner: sam@reps.example}
    receivers: [slack, email, crm]
default:
  receivers: [slack, email]
# One stack serves every e2e test of the session, and many reuse the demo's reps (alice, bob):
# a daily budget of 10 would defer later tests' alerts to tomorrow's digest. The budget is
# tested on its own (tests/integration/test_notifier_budget.py, the scripted month).
budget:
  daily: unlimited
"""


def start_stack(
    workdir: Path,
    *,
    database_url: str | None,
    bootstrap_servers: str | None,
    slack_webhook_url: str | None,
    smtp_url: str | None,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 90,
    log_name: str = "stack.log",
    up_args: tuple[str, ...] = (),
) -> RunningStack:
    """`database_url` or `bootstrap_servers` None: `kizashi up` starts its embedded PostgreSQL
    or broker (on free ports) under `workdir/stack`, which a second start finds again."""
    data_dir = workdir / "stack"
    ports = {name: free_port() for name in SERVICES}
    ingest_key = secrets.token_urlsafe(16)
    api_token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "KIZASHI_INGEST_KEYS": f"tests:{ingest_key}",
        "KIZASHI_API_TOKEN": api_token,
        "KIZASHI_DATA_DIR": str(data_dir),
        "KIZASHI_EMAIL_FROM": "alerts@kizashi.test",
        "KIZASHI_SWEEP_INTERVAL_S": "1",
        **{f"KIZASHI_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        # Where the customer emails' unsubscribe links point (a playbook on needs it set).
        "KIZASHI_NOTIFIER_PUBLIC_URL": f"http://127.0.0.1:{ports['notifier']}",
        **(extra_env or {}),
    }
    given_database_url = database_url
    if database_url is None:
        postgres = EmbeddedPostgres(data_dir.resolve(), free_port())
        env["KIZASHI_EMBEDDED_POSTGRES_PORT"] = str(postgres.port)
        database_url = postgres.url
    if bootstrap_servers is None:
        env["KIZASHI_EMBEDDED_BROKER_PORT"] = str(free_port())
    for name, value in (
        ("KIZASHI_DATABASE_URL", given_database_url),
        ("KIZASHI_KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers),
        ("KIZASHI_SLACK_WEBHOOK_URL", slack_webhook_url),
        ("KIZASHI_SMTP_URL", smtp_url),
    ):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    log_path = workdir / log_name
    process = subprocess.Popen(
        [sys.executable, "-m", "kizashi.tools.cli", "up", *up_args],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    stack = RunningStack(
        process, data_dir, urls, ingest_key, api_token, log_path, database_url=database_url, env=env
    )
    deadline = time.monotonic() + timeout_s
    pending = set(SERVICES)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"kizashi up exited with {process.returncode}:\n{stack.log()}")
        if time.monotonic() > deadline:
            stack.stop()
            raise TimeoutError(f"services not ready: {sorted(pending)}\n{stack.log()}")
        for name in list(pending):
            try:
                if httpx.get(f"{urls[name]}/readyz", timeout=1).status_code == 200:
                    pending.discard(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    return stack


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
