"""A Kizashi stack of its own for the notifier's delivery tests, and helpers to feed it signals.

It has its own broker and database: the session `stack`'s notifier (same consumer group, same
deliveries table) would otherwise take these signals and send them with its own routing. Its
routing.yaml sends every scenario to its own path on the session's recording webhook server,
chosen by the account owner, so tests stay independent of each other."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import ChurnRiskSignal, OpportunitySignal, SignalBase
from kizashi.contracts.topics import DEAD_LETTER, SIGNAL_TOPICS
from kizashi.runtime.kafka import OutgoingRecord, Producer, encode
from tests.support.stack import RunningStack

MAX_ATTEMPTS = 3
LEASE_S = 3.0
DIGEST_INTERVAL_S = 10
# Owners whose signals go to their own webhook path through the `ops` receiver's by_owner map.
OWNER_PATHS = (
    "ana",
    "t429",
    "t500",
    "t404",
    "t410",
    "t503",
    "retry",
    "slow",
    "replay",
    "correct",
)

ROUTING = """
receivers:
  - name: ops
    type: slack
    webhook_url: {base}/n/ops
    by_owner:
{by_owner}
  - name: vip
    type: slack
    webhook_url: {base}/n/vip
  - name: digests
    type: slack
    by_owner:
      digest@reps.test: {base}/n/digest-ok
      digest-fail@reps.test: {base}/n/digest-fail
  - name: mail
    type: email
    to: account_owner
  - name: broken
    type: slack
    webhook_url: {base}/n/broken
routes:
  - name: vip accounts
    match: {{owner: "~vip-[0-9]+@regex\\\\.test"}}
    receivers: [vip]
  - name: owner digests
    match: {{owner: "~digest.*@reps\\\\.test"}}
    receivers: [digests, mail]
    digest: {{interval: {digest}s}}
  - name: churn by email
    match: {{kind: churn_risk, owner: mail@reps.test}}
    receivers: [mail]
default:
  receivers: [ops]
"""
# An override from the config folder: the packaged email subject, with a team's prefix.
SUBJECT_OVERRIDE = "[CS team] {{ v.headline }}\n"


def write_config(config_dir: Path, webhook_base: str) -> None:
    by_owner = "\n".join(f"      {o}@reps.test: {webhook_base}/n/{o}" for o in OWNER_PATHS)
    routing = ROUTING.format(base=webhook_base, by_owner=by_owner, digest=DIGEST_INTERVAL_S)
    (config_dir / "templates").mkdir(parents=True, exist_ok=True)
    (config_dir / "routing.yaml").write_text(routing)
    (config_dir / "templates" / "email_subject.txt").write_text(SUBJECT_OVERRIDE)


def stack_env(config_dir: Path) -> dict[str, str]:
    return {
        "KIZASHI_CONFIG_DIR": str(config_dir),
        "KIZASHI_DELIVERY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "KIZASHI_DELIVERY_RETRY_BASE_S": "0.2",
        "KIZASHI_DELIVERY_RETRY_CAP_S": "1",
        "KIZASHI_DELIVERY_LEASE_S": str(LEASE_S),
    }


def make_signal(
    owner: str | None,
    *,
    kind: str = "opportunity",
    rule: str | None = None,
    name: str | None = None,
    priority: str = "medium",
    owner_slack: str | None = None,
    account_id: str | None = None,
) -> SignalBase:
    account_id = account_id or f"acct-{uuid.uuid4().hex[:10]}"
    model = OpportunitySignal if kind == "opportunity" else ChurnRiskSignal
    rule = rule or ("upsell_intent" if kind == "opportunity" else "detractor")
    reason = "Upsell intent 9/10 in the Q4 survey" if kind == "opportunity" else "NPS 3 in Q4"
    return model(
        signal_id=f"sig-{uuid.uuid4().hex}",
        rule=rule,
        account_id=account_id,
        priority=priority,
        episode="e1",
        fired_at=datetime.now(UTC),
        reasons=[reason],
        suggested_play="Call the champion this week.",
        account=AccountFacts(
            account_id=account_id,
            name=name or f"Account {account_id}",
            plan="Growth",
            arr=48000,
            renewal_date=date(2031, 1, 1),
            owner_email=owner,
            owner_slack=owner_slack,
        ),
        scores=ScoreSnapshot(cs=71, op=83, segment="expand", priority=priority),
    )


@dataclass
class NotifierStack:
    stack: RunningStack
    bootstrap_servers: str
    webhook_base: str
    _dead_letters: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.stack.urls["notifier"]

    async def publish(self, *signals: SignalBase) -> None:
        producer = Producer(self.bootstrap_servers, service="tests")
        await producer.start()
        try:
            await producer.send_all(
                [OutgoingRecord(SIGNAL_TOPICS[s.kind], s.account_id, encode(s)) for s in signals]
            )
        finally:
            await producer.stop()

    async def deliveries(self, **params: str) -> list[dict]:
        response = await self.stack.get("notifier", "/v1/deliveries", **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_delivered(
        self, signal: SignalBase, status: str = "sent", within: float = 30, **params: str
    ) -> list[dict]:
        """The signal's deliveries (filtered by `params`) once every one of them has `status`."""

        async def probe() -> list[dict] | None:
            rows = await self.deliveries(signal_id=signal.signal_id, **params)
            return rows if rows and all(r["status"] == status for r in rows) else None

        return await self.stack.wait_for(probe, within=within)

    async def post(self, path: str) -> httpx.Response:
        async with self.stack.api() as client:
            return await client.post(f"{self.url}{path}")

    async def metric(self, name: str, **labels: str) -> float:
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
            if match and ",".join(sorted(match.group(1).split(","))) == wanted:
                return float(match.group(2))
        return 0.0

    async def dead_letters(self) -> list[dict]:
        """Every dead letter on this stack's broker so far (read from the topic itself)."""
        consumer = AIOKafkaConsumer(
            DEAD_LETTER,
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        letters = []
        try:
            for _ in range(5):
                batches = await consumer.getmany(timeout_ms=500)
                if not batches and letters:
                    break
                for records in batches.values():
                    letters += [orjson.loads(r.value) for r in records]
        finally:
            await consumer.stop()
        return letters

    async def wait_dead_letter(self, delivery_id: str, within: float = 20) -> dict:
        async def probe() -> dict | None:
            found = [d for d in await self.dead_letters() if delivery_id in d["reason"]]
            return found[0] if found else None

        return await self.stack.wait_for(probe, within=within, interval=0.5)


async def seconds_into_window(period: float) -> float:
    return datetime.now(UTC).timestamp() % period


async def start_of_fresh_window(period: float, room: float) -> None:
    """Wait until at least `room` seconds are left in the current digest window."""
    left = period - await seconds_into_window(period)
    if left < room:
        await asyncio.sleep(left + 0.2)
