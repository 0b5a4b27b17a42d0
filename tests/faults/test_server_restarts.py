"""The broker, then PostgreSQL, restarted in the middle of a stream; the services ride it out
without being restarted themselves.

The embedded broker (Tansu on memory storage) loses its whole log when it restarts (architecture
§5.10; a real Kafka keeps it). So for the broker case what can be promised is: while it is away
ingest answers 503, never 2xx; every event accepted after it came back is applied exactly
once and alerts exactly once; events accepted before are applied at most once (those still
in flight at the stop die with the broker's memory). On Apache Kafka (all three nodes
stopped, then started) nothing is forgotten: the events accepted before the stop are applied
exactly once too, and alert exactly once. PostgreSQL keeps its data across a
restart, so there every accepted event is applied exactly once and alerts exactly once.
"""

import asyncio
import time
from collections import Counter

import pytest

from tests.faults.pipeline import (
    Client,
    FaultStack,
    Story,
    applied_counts,
    assert_one_alert_each,
    dead_letters,
    processed_counts,
    wait_applied,
)

pytestmark = pytest.mark.faults


class Stream:
    """One request every 100 ms, each for an account of its own: 10 usage events, and on
    every third request the account's facts and a detractor survey as well."""

    def __init__(self, client: Client, story: Story) -> None:
        self.client, self.story = client, story
        self.done = asyncio.Event()
        self.sent: list[tuple[str, bool, float]] = []  # (account, alerting, answered at)

    async def run(self) -> None:
        index = 0
        while not self.done.is_set():
            name = f"s{index}"
            events = [self.story.usage(name) for _ in range(10)]
            if index % 3 == 0:  # facts first: the owner picks the webhook
                events += [self.story.facts(name), self.story.detractor(name)]
            response = await self.client.post(events, retry_for=120)
            assert response.status_code == 202, response.text
            self.sent.append((self.story.account(name), index % 3 == 0, time.monotonic()))
            index += 1
            await asyncio.sleep(0.1)


def _services_not_restarted(faults: FaultStack) -> None:
    restarts = {n: s["restarts"] for n, s in faults.stack.state()["services"].items()}
    assert restarts == dict.fromkeys(restarts, 0), restarts


async def test_broker_restarted_mid_stream(own_fault_stack: FaultStack):
    faults = own_fault_stack
    client = Client(faults.stack)
    stream = Stream(client, Story())
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(3)
    await asyncio.to_thread(faults.stop_broker)
    stopped_at = time.monotonic()
    await asyncio.sleep(4)
    back_at = time.monotonic()
    await asyncio.to_thread(faults.start_broker)
    await asyncio.sleep(6)
    stream.done.set()
    await task
    await client.close()

    # While it was away: 503s, and not one 2xx.
    away = [status for at, status in client.answers if stopped_at < at < back_at]
    assert 503 in away and not any(200 <= s < 300 for s in away), away

    after = [(a, alerting) for a, alerting, at in stream.sent if at > back_at]
    assert len(after) >= 10, "the stream carried on after the broker came back"
    expected_after = Counter({a: client.accepted[a] for a, _ in after})
    await wait_applied(faults, expected_after, within=120)
    await assert_one_alert_each(
        faults,
        [a for a, alerting in after if alerting],
        quiet_accounts=[a for a, alerting in after if not alerting],
        within=60,
    )
    before = [(a, alerting) for a, alerting, at in stream.sent if at < stopped_at]
    if faults.broker_keeps_log:
        # Apache Kafka kept every record and offset: before the stop, exactly once too.
        await wait_applied(faults, Counter({a: client.accepted[a] for a, _ in before}))
        await assert_one_alert_each(
            faults,
            [a for a, alerting in before if alerting],
            quiet_accounts=[a for a, alerting in before if not alerting],
        )
    # Before the stop: at most once (0 when it was lost with the embedded broker's memory).
    before_accounts = [a for a, _ in before]
    applied = await applied_counts(faults.stack, before_accounts)
    assert all(applied[a] in (0, client.accepted[a]) for a in before_accounts), applied
    assert applied == await processed_counts(faults.database_url, before_accounts)
    _services_not_restarted(faults)
    assert await dead_letters(faults.broker.bootstrap_servers) == set()


async def test_postgres_restarted_mid_stream(own_fault_stack: FaultStack):
    faults = own_fault_stack
    client = Client(faults.stack)
    stream = Stream(client, Story())
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(3)
    await asyncio.to_thread(faults.stop_postgres)
    await asyncio.sleep(4)
    await asyncio.to_thread(faults.start_postgres)
    await asyncio.sleep(4)
    stream.done.set()
    await task
    await client.close()

    await wait_applied(faults, client.accepted, within=120)
    await assert_one_alert_each(
        faults,
        [a for a, alerting, _ in stream.sent if alerting],
        quiet_accounts=[a for a, alerting, _ in stream.sent if not alerting],
        within=60,
    )
    _services_not_restarted(faults)
    assert await dead_letters(faults.broker.bootstrap_servers) == set()
