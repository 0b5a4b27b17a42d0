"""A digest's delivery id names the rows it carries: a row that joins a digest key after the
digest went out is sent, under an id of its own, and a retry keeps its id.

The notifier's delivery worker (`deliver_due`) runs in the test's process against its own
PostgreSQL database and the recording webhook server. The rows are recorded with the
consumer's own statement (`repository.record_intents`), the late one after the digest was
sent: what happens when the consumer took the window from its clock just before the window's
end and committed just after the worker sent it."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kizashi.notifier import repository
from kizashi.notifier.consumer import delivery_id_for
from kizashi.notifier.deliver import deliver_due
from kizashi.notifier.digest import digest_id_for
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import load_routing_config
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import WebhookSender
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.retry import RetryPolicy
from kizashi.runtime.settings import Settings
from kizashi.tools.migrate import upgrade_async
from tests.support import infra
from tests.support.notifier_stack import make_signal

ROUTING = """
receivers:
  - name: late
    type: slack
    webhook_url: {base}/n/late-digest
default:
  receivers: [late]
"""


@pytest.fixture(scope="module")
async def notifier(database_url, webhook, tmp_path_factory) -> AsyncIterator[NotifierState]:
    name = f"kizashi_digest_{uuid.uuid4().hex[:10]}"
    await infra._create_database(database_url, name)
    url = infra._with_database(database_url, name)
    config_dir: Path = tmp_path_factory.mktemp("digest-config")
    (config_dir / "routing.yaml").write_text(ROUTING.format(base=webhook.url("").rstrip("/")))
    runtime = ServiceRuntime(service="notifier", settings=Settings(), engine=create_engine(url))
    try:
        await upgrade_async(url)
        yield NotifierState(
            runtime=runtime,
            routing=load_routing_config(config_dir, slack_webhook_url=None, smtp_configured=False),
            renderer=Renderer(None),
            webhooks=WebhookSender(rate=100, burst=100),
            smtp=None,
            # No jitter, and long enough that a failed digest is not due again at once.
            retry=RetryPolicy(max_attempts=3, base=1.5, cap=1.5, jitter=False),
            action_secret="digest-test-secret",
            public_url="http://notifier.test",
        )
    finally:
        await runtime.stop()
        await infra._drop_database(database_url, name)


async def _record(service: NotifierState, key: str, signals) -> list[str]:
    """Record each signal's delivery in the digest `key` (due: its window has ended)."""
    window_end = datetime.now(UTC) - timedelta(seconds=1)
    intents = [
        repository.Intent(
            delivery_id=delivery_id_for(s.signal_id, "late"),
            signal_id=s.signal_id,
            receiver="late",
            channel="slack",
            payload=s.model_dump(mode="json"),
            digest_key=key,
            not_before=window_end,
        )
        for s in signals
    ]
    async with raw_transaction(service.engine) as connection:
        await repository.record_intents(conn=connection, intents=intents)
    return [i.delivery_id for i in intents]


async def _statuses(service: NotifierState, ids: list[str]) -> set[str]:
    async with raw_transaction(service.engine) as connection:
        rows = await connection.fetch(
            "SELECT status FROM deliveries WHERE delivery_id = ANY($1::text[])", ids
        )
    return {row["status"] for row in rows}


def _messages(webhook, owner: str) -> list:
    return [r for r in webhook.requests_to("/n/late-digest") if owner in str(r.json)]


async def test_a_row_committed_after_its_digest_was_sent_goes_out_under_a_new_id(
    notifier, webhook
) -> None:
    owner = f"late-{uuid.uuid4().hex[:8]}@reps.test"
    key = f"late|{owner}|{int(datetime.now(UTC).timestamp())}"
    first = [make_signal(owner, name=f"On Time Co {i}") for i in range(2)]
    on_time = await _record(notifier, key, first)
    assert await deliver_due(notifier) == 2
    [digest] = _messages(webhook, owner)
    assert digest.headers["x-kizashi-delivery-id"] == digest_id_for(key, on_time)
    assert await _statuses(notifier, on_time) == {"sent"}

    # Committed just after the digest went out, with the same window (the same key).
    late = await _record(notifier, key, [make_signal(owner, name="Late Co")])
    assert await deliver_due(notifier) == 1
    [_, again] = _messages(webhook, owner)
    assert again.headers["x-kizashi-delivery-id"] == digest_id_for(key, late)
    assert again.headers["x-kizashi-delivery-id"] != digest.headers["x-kizashi-delivery-id"]
    assert "Late Co" in str(again.json) and "On Time Co" not in str(again.json)
    assert await _statuses(notifier, late) == {"sent"}
    assert await deliver_due(notifier) == 0  # nothing sent twice


async def test_a_retried_digest_keeps_its_id_and_a_late_row_does_not_join_it(
    notifier, webhook
) -> None:
    owner = f"retry-{uuid.uuid4().hex[:8]}@reps.test"
    key = f"late|{owner}|{int(datetime.now(UTC).timestamp())}"
    webhook.respond_with("/n/late-digest", [500])
    on_time = await _record(
        notifier, key, [make_signal(owner, name=f"Retried Co {i}") for i in (1, 2)]
    )
    assert await deliver_due(notifier) == 2  # answered 500: retried in 1.5 s
    assert await _statuses(notifier, on_time) == {"pending"}

    # A late row while the digest waits for its retry: it goes out now, on its own.
    late = await _record(notifier, key, [make_signal(owner, name="Late Joiner Co")])
    assert await deliver_due(notifier) == 1
    assert await _statuses(notifier, late) == {"sent"}

    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while await _statuses(notifier, on_time) != {"sent"}:
        assert datetime.now(UTC) < deadline, "the retried digest was never sent"
        await deliver_due(notifier)
        await asyncio.sleep(0.2)

    failed, alone, retried = _messages(webhook, owner)
    ids = [r.headers["x-kizashi-delivery-id"] for r in (failed, alone, retried)]
    assert ids == [
        digest_id_for(key, on_time),
        digest_id_for(key, late),
        digest_id_for(key, on_time),
    ]
    assert "Late Joiner Co" in str(alone.json) and "Retried Co" not in str(alone.json)
    assert "Late Joiner Co" not in str(retried.json)
    assert all(f"Retried Co {i}" in str(retried.json) for i in (1, 2))
