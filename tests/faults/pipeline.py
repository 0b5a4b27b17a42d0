"""What every fault case needs: a stack on servers of its own (so that it may stop them, and
so that its dead-letter topic holds only what the case put there), a client stream that
records what ingest accepted, and the checks that nothing accepted was lost or doubled.

"Applied" is read twice, from scoring's API (`event_counts` of each account) and from the
`processed_events` table; "alerts" from the recording webhook (one request per message, with
its `X-Kizashi-Delivery-Id`) and from the `deliveries` table.
"""

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from kizashi.contracts.topics import DEAD_LETTER
from kizashi.notifier.consumer import delivery_id_for
from kizashi.tools.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from kizashi.tools.migrate import upgrade
from kizashi.tools.stack import credentials_file, read_env_file
from tests.support import infra
from tests.support.kafka_cluster import KafkaCluster
from tests.support.stack import SETTLE_FAST_RULES, RunningStack, start_stack
from tests.support.webhook_server import RecordingWebhookServer

OWNERS = 16  # alert owners, each with a webhook of its own (the notifier paces each to ~1/s)
# Short enough that a case finishes quickly; long enough for one send on a busy machine.
FAULT_ENV = {
    "KIZASHI_CONSUMER_MAX_BATCH": "50",  # many small batches: a kill lands mid-stream
    "KIZASHI_DELIVERY_LEASE_S": "4",  # a `sending` row left by a killed notifier is retried soon
    "KIZASHI_DELIVERY_RETRY_BASE_S": "0.2",
    "KIZASHI_KAFKA_SEND_TIMEOUT_S": "3",
    # KIZASHI_TEST_LOG_LEVEL=INFO logs every delivery sent, for a post-mortem.
    "KIZASHI_LOG_LEVEL": os.environ.get("KIZASHI_TEST_LOG_LEVEL", "WARNING"),
}


def routing_yaml(webhook: RecordingWebhookServer) -> str:
    owners = "\n".join(f'      "@owner-{k}": {webhook.url(f"/owner/{k}")}' for k in range(OWNERS))
    return (
        "receivers:\n  - name: slack\n    type: slack\n"
        "    webhook_url_env: KIZASHI_SLACK_WEBHOOK_URL\n    by_owner:\n"
        f"{owners}\nroutes: []\ndefault:\n  receivers: [slack]\n"
        # Every alert at once: the faults are about delivery, not each rep's daily budget.
        "budget:\n  daily: unlimited\n"
    )


@dataclass
class FaultStack:
    """`kizashi up` on its own PostgreSQL and broker, which the case may stop and start.

    The broker is the embedded Tansu or a three-node Apache Kafka cluster (`flavour`); for
    the latter, stopping "the broker" stops every node (a clean shutdown), and starting it
    brings them back on the same ports and logs."""

    workdir: Path
    postgres: EmbeddedPostgres
    broker: EmbeddedBroker | KafkaCluster
    webhook: RecordingWebhookServer
    stack: RunningStack

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def flavour(self) -> str:
        return "kafka" if isinstance(self.broker, KafkaCluster) else "embedded"

    @property
    def broker_keeps_log(self) -> bool:
        """Apache Kafka keeps its log across a restart; the embedded broker (memory) does not."""
        return self.flavour == "kafka"

    def stop_broker(self) -> None:
        self.broker.stop()

    def start_broker(self) -> None:
        if isinstance(self.broker, KafkaCluster):
            self.broker.start()
            return
        self.broker = EmbeddedBroker(self.broker.data_dir, self.broker.port)
        self.broker.start()

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def start_postgres(self) -> None:
        self.postgres = EmbeddedPostgres(self.postgres.data_dir, self.postgres.port, fsync=False)
        self.postgres.start()

    def close(self) -> int:
        code = self.stack.stop()
        infra.close_broker(self.broker)
        self.postgres.stop()
        return code


async def open_fault_stack(workdir: Path, flavour: str = "embedded") -> FaultStack:
    broker = infra.new_broker(workdir, flavour)
    postgres = EmbeddedPostgres(workdir / "pg", free_port(), fsync=False)
    webhook = RecordingWebhookServer()
    await webhook.start()
    await asyncio.to_thread(postgres.start)
    await asyncio.to_thread(upgrade, postgres.url)
    try:
        await asyncio.to_thread(broker.start)
    except BaseException:
        await asyncio.to_thread(infra.close_broker, broker)
        await asyncio.to_thread(postgres.stop)
        await webhook.stop()
        raise
    config_dir = workdir / "config"
    config_dir.mkdir()
    (config_dir / "routing.yaml").write_text(routing_yaml(webhook))
    (config_dir / "rules.yaml").write_text(SETTLE_FAST_RULES)
    stack = await asyncio.to_thread(
        start_stack,
        workdir,
        database_url=postgres.url,
        bootstrap_servers=broker.bootstrap_servers,
        slack_webhook_url=webhook.url("/slack"),
        smtp_url=None,
        extra_env={**FAULT_ENV, "KIZASHI_CONFIG_DIR": str(config_dir)},
    )
    return FaultStack(workdir, postgres, broker, webhook, stack)


async def close_fault_stack(faults: FaultStack) -> None:
    code = await asyncio.to_thread(faults.close)
    await faults.webhook.stop()
    assert code == 0, f"kizashi up exited with {code}:\n{faults.stack.log()}"


@dataclass
class Replica:
    """One more process of a service, next to the one `kizashi up` runs (not supervised:
    a SIGKILL ends it for good)."""

    service: str
    process: subprocess.Popen
    url: str

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_replica(faults: FaultStack, service: str) -> Replica:
    """`kizashi serve <service>` with the stack's environment and keys, on a port of its own;
    its log goes to the stack's log folder. Returns once it is ready."""
    port = free_port()
    env = {
        **faults.stack.env,
        **read_env_file(credentials_file(faults.stack.data_dir)),
        f"KIZASHI_{service.upper()}_PORT": str(port),
    }
    log = (faults.workdir / f"replica-{service}-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kizashi.tools.cli", "serve", service],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    replica = Replica(service, process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, f"the {service} replica exited with {process.returncode}"
        try:
            if httpx.get(f"{replica.url}/readyz", timeout=1).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            replica.stop()
            raise TimeoutError(f"the {service} replica was not ready within 90 s")
        time.sleep(0.3)


def webhook_pace(webhook: RecordingWebhookServer) -> dict[str, float]:
    """The shortest gap (seconds) between two messages to the same webhook path."""
    times: dict[str, list[float]] = {}
    for request in webhook.requests:
        times.setdefault(request.path, []).append(request.at)
    return {
        path: min(b - a for a, b in itertools.pairwise(sorted(at)))
        for path, at in times.items()
        if len(at) > 1
    }


def longest_refusal(answers: list[tuple[float, int]]) -> float:
    """The longest time (seconds) between the first and the last of consecutive non-2xx
    answers, from first refusal to the next 2xx."""
    longest, since = 0.0, None
    for at, status in sorted(answers):
        if 200 <= status < 300:
            if since is not None:
                longest = max(longest, at - since)
            since = None
        elif since is None:
            since = at
    return longest


# --- the client side -------------------------------------------------------------------------


@dataclass
class Story:
    """Events for one case: usage over a few accounts, and alert accounts (facts, then one
    detractor survey each, which fires exactly one `detractor` signal)."""

    case: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _ids: itertools.count = field(default_factory=itertools.count)

    def account(self, name: str) -> str:
        return f"f-{self.case}-{name}"

    def usage(self, account: str, **extra) -> dict:
        n = next(self._ids)
        return {
            "type": "product_usage",
            "account_id": self.account(account),
            "event_id": f"{self.case}-{n}",
            "user_id": f"u{n % 5}",
            "action": "feature_used",
            "feature": ("reports", "alerts", "exports")[n % 3],
            **extra,
        }

    def facts(self, account: str) -> dict:
        return {
            "type": "account_update",
            "account_id": self.account(account),
            "event_id": f"{self.case}-{next(self._ids)}",
            "name": self.account(account),
            "owner_slack": f"@owner-{zlib.crc32(account.encode()) % OWNERS}",
            "plan": "Growth",
        }

    def detractor(self, account: str, **extra) -> dict:
        return {
            "type": "survey_response",
            "account_id": self.account(account),
            "event_id": f"{self.case}-{next(self._ids)}",
            "survey_id": "faults",
            "nps": 2,
            **extra,
        }


class Client:
    """Posts batches to ingest like a well-behaved client: a batch answered 503 is sent again
    with the same event ids. Records which events were accepted (202), and every answer."""

    def __init__(self, stack: RunningStack) -> None:
        self.http = stack.ingest()
        self.accepted: Counter[str] = Counter()  # account → events accepted
        self.accepted_ids: set[str] = set()
        self.answers: list[tuple[float, int]] = []  # (monotonic time answered, status)

    async def post(self, events: list[dict], *, retry_for: float = 60) -> httpx.Response:
        deadline = time.monotonic() + retry_for
        while True:
            try:
                response = await self.http.post("/v1/events", json={"events": events})
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
                continue
            self.answers.append((time.monotonic(), response.status_code))
            if response.status_code == 202:
                rejected = {r["index"] for r in response.json()["rejected"]}
                for index, event in enumerate(events):
                    if index not in rejected and event["event_id"] not in self.accepted_ids:
                        self.accepted_ids.add(event["event_id"])
                        self.accepted[event["account_id"]] += 1
                return response
            if response.status_code != 503 or time.monotonic() > deadline:
                return response
            await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 0.5))

    async def close(self) -> None:
        await self.http.aclose()


# --- the checks ------------------------------------------------------------------------------


async def applied_counts(stack: RunningStack, accounts: list[str]) -> dict[str, int]:
    """Events applied per account, as scoring's API reports them (0 for an unknown account)."""
    counts = {}
    async with stack.api() as client:
        for account in accounts:
            response = await client.get(f"{stack.urls['scoring']}/v1/accounts/{account}")
            counts[account] = (
                sum(response.json()["event_counts"].values()) if response.status_code == 200 else 0
            )
    return counts


async def processed_counts(database_url: str, accounts: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT account_id, count(*) AS n FROM processed_events"
            " WHERE account_id = ANY($1::text[]) GROUP BY account_id",
            accounts,
        )
    finally:
        await connection.close()
    return {account: 0 for account in accounts} | {r["account_id"]: r["n"] for r in rows}


async def wait_applied(faults: FaultStack, expected: Counter[str], within: float = 90) -> None:
    """Every accepted event applied exactly once, by the API and by the table."""
    accounts = sorted(expected)
    wanted = {a: expected[a] for a in accounts}

    async def settled():
        return await applied_counts(faults.stack, accounts) == wanted

    with contextlib.suppress(AssertionError):
        await faults.stack.wait_for(settled, within=within, interval=0.5)
    applied = await applied_counts(faults.stack, accounts)
    wrong = {a: (applied[a], wanted[a]) for a in accounts if applied[a] != wanted[a]}
    assert not wrong, (
        f"(applied, accepted) differ for {len(wrong)} accounts: {wrong}\n{consumer_log(faults)}"
    )
    assert await processed_counts(faults.database_url, accounts) == wanted


def consumer_log(faults: FaultStack) -> str:
    """The stack's log lines about consumers (a failure's first clue), not the noise."""
    lines = faults.stack.log_path.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if "kizashi.runtime" in line or "restart" in line)


async def signals_of(database_url: str, accounts: list[str]) -> list[dict]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT signal_id, account_id, rule FROM signals WHERE account_id = ANY($1::text[])",
            accounts,
        )
    finally:
        await connection.close()
    return [dict(r) for r in rows]


async def deliveries_of(database_url: str, signal_ids: list[str]) -> list[dict]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT delivery_id, signal_id, status FROM deliveries"
            " WHERE signal_id = ANY($1::text[])",
            signal_ids,
        )
    finally:
        await connection.close()
    return [dict(r) for r in rows]


def messages_for(webhook: RecordingWebhookServer, accounts: list[str]) -> list:
    """The Slack messages naming one of these accounts (the name is the account id)."""
    if not accounts:
        return []
    # Whole ids only: "f-x-s3" must not match a message about "f-x-s30". The group matters:
    # without it the lookahead bound only the last alternative, and a message about s15 was
    # counted as one about s1 (test_broker_restarted_mid_stream[kafka], whose before-the-stop
    # accounts s0..s14 prefix the later ones).
    pattern = re.compile("(?:" + "|".join(re.escape(a) for a in accounts) + r")(?![\w-])")
    return [
        r
        for r in webhook.requests
        if isinstance(r.json, dict) and pattern.search(r.json.get("text", ""))
    ]


async def assert_one_alert_each(
    faults: FaultStack,
    alert_accounts: list[str],
    *,
    quiet_accounts: list[str] = (),
    resent_at_most: int = 0,
    rule: str = "detractor",
    within: float = 90,
) -> None:
    """Each alert account has exactly one signal (its `detractor`, or `rule`), the signal
    exactly one `sent` delivery, and the webhook got it as one message; quiet accounts got nothing.

    `resent_at_most`: a notifier killed between Slack's answer and its own commit sends that
    message again on restart, with the same X-Kizashi-Delivery-Id (the documented window);
    such a repeat is allowed only where a case kills the notifier, and only that many times."""
    everyone = [*alert_accounts, *quiet_accounts]

    async def all_sent():
        signals = await signals_of(faults.database_url, everyone)
        deliveries = await deliveries_of(faults.database_url, [s["signal_id"] for s in signals])
        sent = {d["signal_id"] for d in deliveries if d["status"] == "sent"}
        got = {a for a in alert_accounts if messages_for(faults.webhook, [a])}
        return (
            len(signals) >= len(alert_accounts)
            and sent >= {s["signal_id"] for s in signals}
            and got == set(alert_accounts)
        )

    with contextlib.suppress(AssertionError):
        await faults.stack.wait_for(all_sent, within=within, interval=0.5)
    await asyncio.sleep(1.0)  # room for a (wrong) second message to show up
    signals = await signals_of(faults.database_url, everyone)
    assert sorted((s["account_id"], s["rule"]) for s in signals) == sorted(
        (a, rule) for a in alert_accounts
    ), f"one {rule} signal per alert account, nothing else: {signals}"
    deliveries = await deliveries_of(faults.database_url, [s["signal_id"] for s in signals])
    assert sorted((d["signal_id"], d["status"]) for d in deliveries) == sorted(
        (s["signal_id"], "sent") for s in signals
    ), "one sent delivery per signal"
    messages = messages_for(faults.webhook, everyone)
    delivery_ids = [m.headers.get("x-kizashi-delivery-id") for m in messages]
    wanted = {delivery_id_for(s["signal_id"], "slack"): s for s in signals}
    assert set(delivery_ids) == set(wanted), _mismatch(faults, wanted, messages)
    assert len(delivery_ids) - len(set(delivery_ids)) <= resent_at_most, delivery_ids
    for account in alert_accounts:
        mine = messages_for(faults.webhook, [account])
        assert len({m.headers["x-kizashi-delivery-id"] for m in mine}) == 1, account


def _mismatch(faults: FaultStack, wanted: dict[str, dict], messages: list) -> str:
    """What a failed message check needs: which messages are extra, which signals have none,
    and every request the webhook got."""
    ids = {m.headers.get("x-kizashi-delivery-id") for m in messages}
    extra = [
        (m.path, m.json.get("text"))
        for m in messages
        if m.headers.get("x-kizashi-delivery-id") not in wanted
    ]
    missing = [wanted[i] for i in set(wanted) - ids]
    every = [
        (m.path, m.headers.get("x-kizashi-delivery-id"), (m.json or {}).get("text"))
        for m in faults.webhook.requests
    ]
    return f"extra messages: {extra}\nsignals without a message: {missing}\nall requests: {every}"


# --- dead letters ----------------------------------------------------------------------------


async def dead_letters(bootstrap: str, idle_s: float = 1.5) -> set[tuple[str, str, int, int]]:
    """Every dead letter on the topic, read from the beginning: (service, origin topic,
    partition, offset). End offsets are wrong on Tansu (architecture §6.3), so read until quiet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(DEAD_LETTER, p) for p in consumer.partitions_for_topic(DEAD_LETTER) or ()
        ]
        if not partitions:
            return set()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        letters = set()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    letter = orjson.loads(record.value)
                    letters.add(
                        (letter["service"], letter["topic"], letter["partition"], letter["offset"])
                    )
                quiet_since = time.monotonic()
        return letters
    finally:
        await consumer.stop()


def now_iso(delta_s: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + delta_s, UTC).isoformat()
