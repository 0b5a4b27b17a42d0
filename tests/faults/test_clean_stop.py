"""A clean stop of `kizashi up` on its embedded broker loses nothing (architecture §6.1).

The embedded Tansu keeps its log in memory: what survives a stop is what scoring, triggers
and the notifier committed into PostgreSQL. So on Ctrl-C/SIGTERM `kizashi up` first closes
ingest (503 with Retry-After), then waits until the pipeline has consumed and committed
everything and the due alerts are sent, and only then stops the services, the broker and
PostgreSQL. Each case here runs a whole embedded stack (its own PostgreSQL and Tansu under
its data folder), stops it, and where it says so starts it again on the same folder.

To hold a drain open for as long as a case needs, scoring is paused (SIGSTOP): its lag
cannot fall until it is resumed.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.pipeline import (
    FAULT_ENV,
    Client,
    Story,
    assert_one_alert_each,
    routing_yaml,
    wait_applied,
)
from tests.support.stack import RunningStack, start_stack
from tests.support.webhook_server import RecordingWebhookServer

pytestmark = pytest.mark.faults

ACCOUNTS = 100
ALERT_ACCOUNTS = 12  # facts + a detractor survey each: one alert each
EVENTS_PER_ACCOUNT = 20  # 2,000 events in all


@dataclass
class Embedded:
    """An embedded `kizashi up` and the webhook its alerts go to (what the pipeline checks
    read: `stack`, `database_url`, `webhook`)."""

    workdir: Path
    webhook: RecordingWebhookServer
    stack: RunningStack
    drain_timeout_s: str
    starts: int = 1

    @property
    def database_url(self) -> str:
        return self.stack.database_url

    @property
    def log(self) -> str:
        return self.stack.log_path.read_text(errors="replace")

    async def restart(self) -> None:
        """Start `kizashi up` again on the same data folder (the first one must have ended)."""
        assert self.stack.process.poll() is not None
        self.starts += 1
        self.stack = await asyncio.to_thread(
            _start,
            self.workdir,
            self.webhook,
            self.drain_timeout_s,
            log_name=f"stack-{self.starts}.log",
        )

    async def interrupt(self) -> None:
        """What Ctrl-C does: SIGINT to `kizashi up` (its services have sessions of their own)."""
        self.stack.process.send_signal(signal.SIGINT)

    async def exit_code(self, within: float = 240) -> int:
        return await asyncio.to_thread(self.stack.process.wait, within)

    async def said(self, text: str, within: float = 120) -> None:
        async def found() -> bool:
            return text in self.log

        await self.stack.wait_for(found, within=within, interval=0.2)

    def service_pid(self, service: str) -> int:
        return self.stack.state()["services"][service]["pid"]


def _start(
    workdir: Path, webhook: RecordingWebhookServer, drain_timeout_s: str, **options
) -> RunningStack:
    return start_stack(
        workdir,
        database_url=None,
        bootstrap_servers=None,
        slack_webhook_url=webhook.url("/slack"),
        smtp_url=None,
        extra_env={
            **FAULT_ENV,
            "KIZASHI_CONFIG_DIR": str(workdir / "config"),
            "KIZASHI_DRAIN_TIMEOUT_S": drain_timeout_s,
        },
        **options,
    )


@contextlib.asynccontextmanager
async def embedded_stack(drain_timeout_s: str = "300") -> AsyncIterator[Embedded]:
    """The default bound leaves room for a busy machine: the cases check what is kept, not
    how fast."""
    # Not under pytest's basetemp: PostgreSQL runs as another user when the tests run as root.
    workdir = Path(tempfile.mkdtemp(prefix="kizashi-stop-"))
    webhook = RecordingWebhookServer()
    await webhook.start()
    (workdir / "config").mkdir()
    (workdir / "config" / "routing.yaml").write_text(routing_yaml(webhook))
    embedded = None
    try:
        stack = await asyncio.to_thread(_start, workdir, webhook, drain_timeout_s)
        embedded = Embedded(workdir, webhook, stack, drain_timeout_s)
        yield embedded
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stack.stop)
        await webhook.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def burst(story: Story) -> tuple[list[list[dict]], list[str], list[str]]:
    """2,000 events: one batch per account, the alert accounts' facts before their survey."""
    batches, alerting, quiet = [], [], []
    for index in range(ACCOUNTS):
        name = f"b{index}"
        if index < ALERT_ACCOUNTS:
            events = [story.facts(name), story.detractor(name)]
            alerting.append(story.account(name))
        else:
            events = []
            quiet.append(story.account(name))
        events += [story.usage(name) for _ in range(EVENTS_PER_ACCOUNT - len(events))]
        batches.append(events)
    return batches, alerting, quiet


async def send_all(client: Client, batches: list[list[dict]], at_once: int = 20) -> None:
    gate = asyncio.Semaphore(at_once)

    async def send(events: list[dict]) -> None:
        async with gate:
            response = await client.post(events, retry_for=0)
            assert response.status_code == 202, response.text

    await asyncio.gather(*(send(events) for events in batches))


async def test_a_stop_right_after_a_burst_loses_nothing():
    """2,000 events sent at once, SIGINT right after the last 202, a restart on the same
    folder: every accepted event applied exactly once, every alert sent exactly once."""
    async with embedded_stack() as embedded:
        story = Story()
        batches, alerting, quiet = burst(story)
        client = Client(embedded.stack)
        await send_all(client, batches)
        await embedded.interrupt()
        await client.close()
        assert sum(client.accepted.values()) == ACCOUNTS * EVENTS_PER_ACCOUNT

        assert await embedded.exit_code() == 0, embedded.log[-5000:]
        log = embedded.log
        assert "closing ingest" in log and "drained: " in log, log[-5000:]
        assert log.index("drained: ") < log.index("stopping the services"), log[-5000:]
        sent_before_restart = len(embedded.webhook.requests)

        await embedded.restart()
        await wait_applied(embedded, client.accepted, within=60)
        await assert_one_alert_each(embedded, alerting, quiet_accounts=quiet, within=60)
        # Every alert went out during the drain; the restart sent none again.
        assert len(embedded.webhook.requests) == sent_before_restart == len(alerting)


async def test_ingest_answers_503_with_retry_after_while_draining():
    """While the stop waits for the pipeline, every event route answers 503 with Retry-After
    and the drain shows what it waits for; what was accepted before the close is kept."""
    async with embedded_stack() as embedded:
        story = Story()
        client = Client(embedded.stack)
        scoring = embedded.service_pid("scoring")
        os.kill(scoring, signal.SIGSTOP)  # holds the drain open: its lag cannot fall
        try:
            for index in range(5):
                await client.post([story.usage(f"d{index}") for _ in range(10)], retry_for=0)
            await embedded.interrupt()
            await embedded.said("closing ingest")
            ingest = embedded.stack.ingest()
            async with ingest:
                # Until the close takes, an event may still be accepted (and must be kept).
                async def refused() -> bool:
                    response = await client.post([story.usage("late")], retry_for=0)
                    return response.status_code != 202

                await embedded.stack.wait_for(refused, within=30, interval=0.05)
                native = await ingest.post("/v1/events", json=story.usage("refused"))
                track = await ingest.post("/v1/track", json={"userId": "u1", "event": "x"})
                batch = await ingest.post(
                    "/v1/batch", json={"batch": [{"type": "track", "userId": "u", "event": "x"}]}
                )
                ready = await ingest.get("/readyz")
            await embedded.said("draining: scoring lag ")
        finally:
            os.kill(scoring, signal.SIGCONT)
        await client.close()

        assert native.status_code == 503, native.text
        assert native.headers["Retry-After"] == "5"
        assert native.json()["error"] == "unavailable"
        assert "stopping" in native.json()["detail"]
        for segment in (track, batch):
            assert segment.status_code == 503, segment.text
            assert segment.headers["Retry-After"] == "5"
            assert segment.json()["success"] is False
        assert ready.status_code == 503
        assert ready.json()["checks"]["accepting_events"] is False

        assert await embedded.exit_code() == 0, embedded.log[-5000:]
        assert "drained: " in embedded.log, embedded.log[-5000:]
        await embedded.restart()
        # Also any event accepted between the Ctrl-C and the close.
        await wait_applied(embedded, client.accepted, within=60)


async def test_the_drain_is_bounded_and_says_what_was_left():
    async with embedded_stack(drain_timeout_s="2") as embedded:
        await _paused_scoring_stop(embedded)
        await embedded.said("not drained (limit of 2 s reached); left: scoring lag ")
        # Non-zero: a script or a service manager can tell that accepted events were lost.
        assert await embedded.exit_code() == 1, embedded.log[-5000:]
        assert "lost with the embedded broker's memory" in embedded.log


async def test_a_second_ctrl_c_stops_at_once():
    async with embedded_stack() as embedded:
        await _paused_scoring_stop(embedded)
        await embedded.said("draining: scoring lag ")
        await embedded.interrupt()
        await embedded.said("second Ctrl-C: stopping at once")
        assert await embedded.exit_code() == 1, embedded.log[-5000:]
        assert "not drained (second Ctrl-C)" in embedded.log


async def _paused_scoring_stop(embedded: Embedded) -> None:
    """Scoring paused with events waiting for it, then Ctrl-C: a drain that cannot finish.
    Scoring stays paused; the stop kills it (SIGKILL ends a stopped process too)."""
    story = Story()
    os.kill(embedded.service_pid("scoring"), signal.SIGSTOP)
    async with embedded.stack.ingest() as ingest:
        response = await ingest.post(
            "/v1/events", json={"events": [story.usage("p") for _ in range(10)]}
        )
    assert response.status_code == 202, response.text
    await embedded.interrupt()
