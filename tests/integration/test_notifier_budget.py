"""The daily budget per rep on the real PostgreSQL, the recording Slack webhook and the local
SMTP server: N + k alerts for one owner, taken by two notifier replicas at once and one after a
restart, give N messages at once and k in the owner's next digest, ranked, none lost, and the
same on each receiver by its own budget (issue #20, item 3; docs/notifications.md).

Each "replica" is a NotifierState of its own on one scratch database (as in
test_notifier_replicas). Its clock is a fixed day, so the test never straddles a midnight;
that day is past, so its digest is due as soon as the worker runs, which is why every signal
is recorded before any worker starts."""

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from kizashi.contracts.budget import alert_rank
from kizashi.contracts.signals import Retraction
from kizashi.contracts.topics import SIGNAL_TOPICS
from kizashi.notifier import deliver
from kizashi.notifier.consumer import delivery_id_for, handle_signals
from kizashi.notifier.pacing import SharedPacer
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import build_tree
from kizashi.notifier.settings import NotifierSettings
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SmtpSender, WebhookSender
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.kafka import encode
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.retry import RetryPolicy
from tests.support import infra
from tests.support.notifier_stack import make_signal

DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SLACK_BUDGET, MAIL_BUDGET = 4, 2


@pytest.fixture(scope="module")
async def database_url(database_url: str):
    async with infra.scratch_database(database_url, "kizashi_budget") as url:
        yield url


def routing(base: str, owner: str, slack: str, mail: str):
    raw = {
        "receivers": [
            {"name": slack, "type": "slack", "by_owner": {owner: f"{base}/rep"}},
            {"name": mail, "type": "email", "to": "account_owner", "daily_budget": MAIL_BUDGET},
        ],
        "routes": [],
        "default": {"receivers": [slack, mail]},
        # No reserve: exactly N go at once whatever order the replicas take them in (the
        # reserve's choice by rank is the unit tests' and the scripted month's).
        "budget": {"daily": SLACK_BUDGET, "reserve": 0, "digest": {"interval": "1d"}},
    }
    return build_tree(raw, source="test", environ={}, smtp_configured=True)


@asynccontextmanager
async def replica(database_url: str, tree, smtp_url: str):
    runtime = ServiceRuntime(
        service="notifier",
        settings=NotifierSettings(database_url=database_url),
        engine=create_engine(database_url),
    )
    webhooks = WebhookSender(pacer=SharedPacer(runtime.engine))
    service = NotifierState(
        runtime=runtime,
        routing=tree,
        renderer=Renderer(None),
        webhooks=webhooks,
        smtp=SmtpSender.from_url(smtp_url, sender="alerts@kizashi.test"),
        retry=RetryPolicy(max_attempts=3, base=0.2, cap=1),
        action_secret="budget-test-secret-0123456789abcdef",
        public_url="http://127.0.0.1:1",
        lease_s=10,
        clock=lambda: DAY,
    )
    try:
        yield service
    finally:
        await webhooks.aclose()
        await runtime.engine.dispose()


def records(signals) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(
            SIGNAL_TOPICS[s.kind], 0, n, 0, 0, s.account_id.encode(), encode(s), None, 0, 0, []
        )
        for n, s in enumerate(signals)
    ]


async def rows(database_url: str, owner: str) -> list[dict]:
    engine = create_engine(database_url)
    try:
        async with raw_transaction(engine) as conn:
            found = await conn.fetch(
                """
                SELECT delivery_id, signal_id, receiver, status, budgeted, digest_key
                FROM deliveries WHERE payload->'account'->>'owner_email' = $1
                """,
                owner,
            )
    finally:
        await engine.dispose()
    return [dict(r) for r in found]


def counted(name: str, receiver: str) -> float:
    return (
        REGISTRY.get_sample_value(f"kizashi_notifier_alerts_{name}_total", {"receiver": receiver})
        or 0.0
    )


async def test_n_plus_k_alerts_for_one_owner_give_n_at_once_and_k_in_the_next_digest_ranked(
    database_url, webhook, smtp
):
    run = uuid.uuid4().hex[:6]
    owner = f"rep-{run}@budget.test"
    slack, mail = f"slack-{run}", f"mail-{run}"
    base = webhook.url(f"/budget-{run}").rstrip("/")
    path = f"/budget-{run}/rep"
    tree = routing(base, owner, slack, mail)
    # Eight alerts for one rep, each with its own account, ARR and priority.
    specs = [
        (40_000, "medium", "opportunity"),
        (10_000, "low", "opportunity"),
        (250_000, "high", "churn_risk"),
        (60_000, "medium", "churn_risk"),
        (5_000, "low", "churn_risk"),
        (120_000, "high", "opportunity"),
        (30_000, "medium", "opportunity"),
        (90_000, "low", "opportunity"),
    ]
    signals = []
    for n, (arr, priority, kind) in enumerate(specs):
        s = make_signal(owner, kind=kind, priority=priority, name=f"Budget Co {n}")
        signals.append(s.model_copy(update={"account": s.account.model_copy(update={"arr": arr})}))
    later = [make_signal(owner, name=f"Budget Co {n}") for n in (8, 9)]
    within, deferred = counted("within_budget", slack), counted("deferred", slack)

    # Two replicas take the first eight at once, one signal per batch, interleaved.
    async with (
        replica(database_url, tree, smtp.url) as first,
        replica(database_url, tree, smtp.url) as second,
    ):
        await asyncio.gather(
            *(
                handle_signals(first if n % 2 else second, records([s]))
                for n, s in enumerate(signals)
            )
        )
    # A restart: a new process finds the day's tally in the rows, and a replay adds nothing.
    async with replica(database_url, tree, smtp.url) as restarted:
        await handle_signals(restarted, records([*later, signals[0], signals[2]]))

    recorded = await rows(database_url, owner)
    everyone = {s.signal_id for s in [*signals, *later]}
    for receiver, budget in ((slack, SLACK_BUDGET), (mail, MAIL_BUDGET)):
        mine = [r for r in recorded if r["receiver"] == receiver]
        assert {r["signal_id"] for r in mine} == everyone and len(mine) == len(everyone)
        now = [r for r in mine if r["budgeted"] == "immediate"]
        waiting = [r for r in mine if r["budgeted"] == "deferred"]
        assert len(now) == budget and len(waiting) == len(everyone) - budget
        assert all(r["digest_key"] is None for r in now)
        assert {r["digest_key"] for r in waiting} == {f"{receiver}|{owner}|1772496000"}  # 3 March
        assert all(r["signal_id"] not in {s.signal_id for s in later} for r in now)
    assert counted("within_budget", slack) - within == SLACK_BUDGET
    assert counted("deferred", slack) - deferred == len(everyone) - SLACK_BUDGET

    # Now the workers send: N single messages and one digest per receiver, nothing lost.
    async with (
        replica(database_url, tree, smtp.url) as first,
        replica(database_url, tree, smtp.url) as second,
    ):
        loops = [
            asyncio.create_task(deliver.delivery_loop(service, poll_s=0.1))
            for service in (first, second)
        ]
        try:
            deadline = asyncio.get_running_loop().time() + 40
            while {r["status"] for r in await rows(database_url, owner)} != {"sent"}:
                assert asyncio.get_running_loop().time() < deadline, "not all sent"
                await asyncio.sleep(0.2)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    recorded = await rows(database_url, owner)
    by_id = {s.signal_id: s for s in [*signals, *later]}
    ranked = sorted(by_id.values(), key=lambda s: (-alert_rank(s), s.fired_at, s.signal_id))

    slack_rows = [r for r in recorded if r["receiver"] == slack]
    immediate_ids = {r["delivery_id"] for r in slack_rows if r["budgeted"] == "immediate"}
    waiting_names = [
        s.account.name for s in ranked if delivery_id_for(s.signal_id, slack) not in immediate_ids
    ]
    got = webhook.requests_to(path)
    singles = [r for r in got if r.headers["x-kizashi-delivery-id"] in immediate_ids]
    digests = [r for r in got if r.headers["x-kizashi-delivery-id"] not in immediate_ids]
    assert len(singles) == SLACK_BUDGET and len(got) == SLACK_BUDGET + 1
    [digest] = digests
    text = str(digest.json)
    places = [text.index(f"Budget Co {name.rsplit(' ', 1)[1]}*") for name in waiting_names]
    assert places == sorted(places), "the digest lists the deferred alerts by rank"

    mail_rows = [r for r in recorded if r["receiver"] == mail]
    mail_now = {r["signal_id"] for r in mail_rows if r["budgeted"] == "immediate"}
    to_owner = [
        m for m, e in zip(smtp.messages, smtp.envelopes, strict=True) if owner in e.rcpt_tos
    ]
    assert len(to_owner) == MAIL_BUDGET + 1
    [mail_digest] = [m for m in to_owner if "digest" in m["Subject"].lower()]
    body = mail_digest.get_body(("plain",)).get_content()
    waiting_mail = [s.account.name for s in ranked if s.signal_id not in mail_now]
    assert len(waiting_mail) == len(everyone) - MAIL_BUDGET
    places = [body.index(f"{name}") for name in waiting_mail]
    assert places == sorted(places)


async def test_an_alert_cancelled_by_a_retraction_takes_no_place_in_the_budget(
    database_url, webhook, smtp
):
    """Three a day with one kept for the day's best: two small alerts and a large one go at
    once. The large one is retracted before it is sent (cancelled): the rep never saw it, so
    it counts neither as sent nor as the day's best, and a middling alert still goes at once."""
    run = uuid.uuid4().hex[:6]
    owner = f"rep-{run}@cancel.test"
    slack = f"slack-{run}"
    raw = {
        "receivers": [
            {"name": slack, "type": "slack", "by_owner": {owner: webhook.url(f"/cancel-{run}")}}
        ],
        "routes": [],
        "default": {"receivers": [slack]},
        "budget": {"daily": 3, "reserve": 1, "digest": {"interval": "1d"}},
    }
    tree = build_tree(raw, source="test", environ={}, smtp_configured=True)

    def alert(n: int, arr: int, priority: str):
        s = make_signal(owner, priority=priority, name=f"Cancel Co {n}")
        return s.model_copy(update={"account": s.account.model_copy(update={"arr": arr})})

    small = [alert(0, 10_000, "low"), alert(1, 10_000, "low")]
    large, middling = alert(2, 250_000, "high"), alert(3, 60_000, "medium")
    assert alert_rank(small[0]) < alert_rank(middling) < alert_rank(large)
    why = Retraction(at=DAY, reason="product usage on 2026-03-01 arrived late")
    async with replica(database_url, tree, smtp.url) as service:
        await handle_signals(service, records([*small, large]))
        await handle_signals(service, records([large.model_copy(update={"retracted": why})]))
        await handle_signals(service, records([middling]))

    by_signal = {r["signal_id"]: r for r in await rows(database_url, owner)}
    assert (by_signal[large.signal_id]["status"], by_signal[large.signal_id]["budgeted"]) == (
        "cancelled",
        "immediate",
    )
    assert [by_signal[s.signal_id]["budgeted"] for s in small] == ["immediate", "immediate"]
    assert by_signal[middling.signal_id]["budgeted"] == "immediate"
    assert by_signal[middling.signal_id]["digest_key"] is None
