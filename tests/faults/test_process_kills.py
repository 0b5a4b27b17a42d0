"""A service SIGKILLed in the middle of a stream, restarted by `kizashi up`'s supervisor.

Offsets are committed only after the database transaction (architecture §5.2), so the killed
process's uncommitted batches replay on restart; event ids and deterministic signal and
delivery ids make the replay harmless."""

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.faults.pipeline import (
    Client,
    FaultStack,
    Story,
    assert_one_alert_each,
    dead_letters,
    messages_for,
    processed_counts,
    wait_applied,
)

pytestmark = pytest.mark.faults


async def _stream(client: Client, story: Story, *, batches: int, alerts: list[str]) -> None:
    """`batches` requests of 40 usage events over 8 accounts, each with one alert survey."""
    for index in range(batches):
        events = [story.usage(f"u{n % 8}") for n in range(40)]
        if index < len(alerts):
            events.append(story.detractor(alerts[index]))
        response = await client.post(events)
        assert response.status_code == 202, response.text
        await asyncio.sleep(0.05)


async def _kill_then_await_restart(faults: FaultStack, service: str) -> None:
    before = faults.stack.state()["services"][service]
    os.kill(before["pid"], signal.SIGKILL)

    async def restarted():
        now = faults.stack.state()["services"][service]
        if now["restarts"] < before["restarts"] + 1 or now["pid"] == before["pid"]:
            return False
        try:
            response = await faults.stack.get(service, "/readyz")
        except httpx.HTTPError:
            return False  # still starting
        return response.status_code == 200

    await faults.stack.wait_for(restarted, within=60)


async def _kill_case(faults: FaultStack, service: str, kill_when) -> None:
    story = Story()
    client = Client(faults.stack)
    letters_before = await dead_letters(faults.broker.bootstrap_servers)
    alerts = [f"alert{n}" for n in range(6)]
    facts = [story.facts(a) for a in alerts]
    assert (await client.post(facts)).status_code == 202
    await wait_applied(faults, client.accepted)
    stream = asyncio.create_task(_stream(client, story, batches=30, alerts=alerts))
    try:
        await kill_when(story, client)
        await _kill_then_await_restart(faults, service)
    finally:
        await stream
    await client.close()
    await wait_applied(faults, client.accepted)
    await assert_one_alert_each(
        faults,
        [story.account(a) for a in alerts],
        quiet_accounts=[story.account(f"u{n}") for n in range(8)],
        resent_at_most=1 if service == "notifier" else 0,
    )
    assert await dead_letters(faults.broker.bootstrap_servers) == letters_before


async def _until(probe, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        assert time.monotonic() < deadline, "the stream never reached the point to kill at"
        await asyncio.sleep(0.02)


async def test_scoring_killed_mid_batch(fault_stack: FaultStack):
    async def some_applied_more_coming(story: Story, client: Client):
        async def probe():
            accounts = [story.account(f"u{n}") for n in range(8)]
            applied = sum((await processed_counts(fault_stack.database_url, accounts)).values())
            return 0 < applied and len(client.answers) < 25

        await _until(probe)

    await _kill_case(fault_stack, "scoring", some_applied_more_coming)


async def test_triggers_killed_mid_stream(fault_stack: FaultStack):
    async def first_signals_made(story: Story, client: Client):
        async def probe():
            return len(client.answers) >= 4

        await _until(probe)

    await _kill_case(fault_stack, "triggers", first_signals_made)


async def test_notifier_killed_mid_delivery(fault_stack: FaultStack):
    async def first_alert_sent(story: Story, client: Client):
        async def probe():
            return bool(messages_for(fault_stack.webhook, [story.account("alert0")]))

        await _until(probe)

    await _kill_case(fault_stack, "notifier", first_alert_sent)
