"""Notifier replicas on one database, in this process: the pace of a webhook is shared, a
lease does not run out while its delivery waits for the pace, a sent message whose result
could not be recorded is never sent again, and a signal built before its account's facts
arrived still reaches the owner (architecture §5.7).

Each "replica" is a NotifierState of its own (its own in-flight set, leases, memory) on the
session's PostgreSQL server and recording webhook; the delivery worker runs as in the service.
The module has a database of its own: the shared stack's notifier, when a test before this one
started it, polls the shared database's pending deliveries and would send these to its own
receivers (seen once in the full suite: 2 of 6 messages went to the stack's webhook path)."""

import asyncio
import uuid
from collections import Counter
from contextlib import asynccontextmanager

import orjson
import pytest

from kizashi.notifier import deliver, repository
from kizashi.notifier.consumer import delivery_id_for
from kizashi.notifier.pacing import SharedPacer
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import build_tree
from kizashi.notifier.settings import NotifierSettings
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import WebhookSender
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.retry import RetryPolicy
from tests.support import infra
from tests.support.notifier_stack import make_signal


@pytest.fixture(scope="module")
async def database_url(database_url: str):
    async with infra.scratch_database(database_url, "kizashi_replicas") as url:
        yield url


def routing(base: str):
    raw = {
        "receivers": [
            {
                "name": "slack",
                "type": "slack",
                "webhook_url": f"{base}/default",
                "by_owner": {"@ana": f"{base}/ana"},
            }
        ],
        "routes": [],
        "default": {"receivers": ["slack"]},
    }
    return build_tree(raw, source="test", environ={}, smtp_configured=False)


@asynccontextmanager
async def replica(database_url: str, base: str, *, lease_s: float):
    runtime = ServiceRuntime(
        service="notifier",
        settings=NotifierSettings(database_url=database_url),
        engine=create_engine(database_url),
    )
    webhooks = WebhookSender(pacer=SharedPacer(runtime.engine))
    service = NotifierState(
        runtime=runtime,
        routing=routing(base),
        renderer=Renderer(None),
        webhooks=webhooks,
        smtp=None,
        retry=RetryPolicy(max_attempts=3, base=0.2, cap=1),
        action_secret="replica-test-secret-0123456789abcdef",
        public_url="http://127.0.0.1:1",
        lease_s=lease_s,
    )
    loop = asyncio.create_task(deliver.delivery_loop(service, poll_s=0.1))
    try:
        yield service
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await webhooks.aclose()
        await runtime.engine.dispose()


async def record(database_url: str, signals) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with raw_transaction(engine) as conn:
            await repository.record_intents(
                conn=conn,
                intents=[
                    repository.Intent(
                        delivery_id_for(s.signal_id, "slack"),
                        s.signal_id,
                        "slack",
                        "slack",
                        orjson.loads(orjson.dumps(s.model_dump(mode="json"))),
                    )
                    for s in signals
                ],
            )
    finally:
        await engine.dispose()
    return [delivery_id_for(s.signal_id, "slack") for s in signals]


async def statuses(database_url: str, ids: list[str]) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        async with raw_transaction(engine) as conn:
            rows = await conn.fetch(
                "SELECT delivery_id, status FROM deliveries WHERE delivery_id = ANY($1)", ids
            )
    finally:
        await engine.dispose()
    return {r["delivery_id"]: r["status"] for r in rows}


async def until(probe, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def received(webhook, path: str) -> list:
    return webhook.requests_to(path)


async def test_two_replicas_share_one_pace_and_leases_outlast_the_wait(database_url, webhook):
    """Six messages for one webhook, two replicas, a lease (0.6 s) far shorter than the wait
    for the last pacing slot (~5 s): each goes out once, about a second apart."""
    base = webhook.url(f"/replicas-{uuid.uuid4().hex[:6]}").rstrip("/")
    path = base.split(str(webhook.port), 1)[1] + "/ana"
    signals = [make_signal(None, owner_slack="@ana") for _ in range(6)]
    ids = await record(database_url, signals)
    async with (
        replica(database_url, base, lease_s=0.6),
        replica(database_url, base, lease_s=0.6),
    ):

        async def all_sent() -> bool:
            return set((await statuses(database_url, ids)).values()) == {"sent"}

        await until(all_sent, within=30)
        await asyncio.sleep(1.5)  # room for a wrong second send
    got = received(webhook, path)
    counts = Counter(r.headers["x-kizashi-delivery-id"] for r in got)
    assert counts == Counter(dict.fromkeys(ids, 1)), counts
    times = sorted(r.at for r in got)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # One a second across both replicas (a little less for the clocks' and loops' slack).
    assert min(gaps) >= 0.8, gaps


async def test_a_sent_message_whose_result_was_not_recorded_is_not_sent_again(
    database_url, webhook, monkeypatch
):
    """The database refuses the result of a send for ~2 s (several leases): the replica that
    sent it keeps it, holds the row, records it when the database answers; neither it nor the
    other replica sends it again."""
    base = webhook.url(f"/unrecorded-{uuid.uuid4().hex[:6]}").rstrip("/")
    path = base.split(str(webhook.port), 1)[1] + "/ana"
    [signal] = signals = [make_signal(None, owner_slack="@ana")]
    [delivery_id] = await record(database_url, signals)
    real = repository.record_attempts
    refused_until = asyncio.get_running_loop().time() + 2.0
    refusals = 0

    async def flaky_record(**kwargs):
        nonlocal refusals
        if asyncio.get_running_loop().time() < refused_until:
            refusals += 1
            raise ConnectionError("the database is away")
        return await real(**kwargs)

    monkeypatch.setattr(repository, "record_attempts", flaky_record)
    async with (
        replica(database_url, base, lease_s=0.3) as first,
        replica(database_url, base, lease_s=0.3) as second,
    ):

        async def sent() -> bool:
            return (await statuses(database_url, [delivery_id])) == {delivery_id: "sent"}

        await until(sent, within=20)
        await asyncio.sleep(1.0)
        assert not first.unrecorded and not second.unrecorded
        assert not first.in_flight and not second.in_flight
    assert refusals >= 2, "the result was refused more than once before it was recorded"
    got = [r.headers["x-kizashi-delivery-id"] for r in received(webhook, path)]
    assert got == [delivery_id], got


async def test_a_signal_without_an_owner_reaches_the_owner_scoring_knows_now(database_url, webhook):
    """The signal's snapshot has no owner (its facts travelled on another topic and came
    later); scoring's accounts table has them by delivery time: the owner's webhook gets it."""
    base = webhook.url(f"/owner-{uuid.uuid4().hex[:6]}").rstrip("/")
    prefix = base.split(str(webhook.port), 1)[1]
    signal = make_signal(None, name=None)
    signal = signal.model_copy(
        update={"account": signal.account.model_copy(update={"name": None, "owner_slack": None})}
    )
    engine = create_engine(database_url)
    try:
        async with raw_transaction(engine) as conn:
            await conn.execute(
                "INSERT INTO accounts (account_id, facts, state) VALUES ($1, $2::jsonb, '{}')",
                signal.account_id,
                orjson.dumps({"name": "Acme Late Facts", "owner_slack": "@ana"}).decode(),
            )
    finally:
        await engine.dispose()
    [delivery_id] = await record(database_url, [signal])
    async with replica(database_url, base, lease_s=5):

        async def sent() -> bool:
            return (await statuses(database_url, [delivery_id])) == {delivery_id: "sent"}

        await until(sent, within=20)
    [message] = received(webhook, f"{prefix}/ana")
    assert "Acme Late Facts" in orjson.dumps(message.json).decode()
    assert received(webhook, f"{prefix}/default") == []
