"""`kizashi up --broker kafka`: one local Apache Kafka node instead of the embedded Tansu, its
log on disk under the data folder. What it acknowledged survives a stop with nothing drained:
scoring is paused and then killed with events waiting for it, the stack stops, and after a
restart on the same folder every accepted event is applied exactly once.

Skipped (and says why) when Java or the Kafka jars of deploy/install-test-tools.sh are missing.
"""

import asyncio
import os
import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from kizashi.tools.localkafka import KafkaNotInstalled, kafka_lib
from tests.faults.pipeline import Client, Story, wait_applied
from tests.support.stack import RunningStack, start_stack

pytestmark = pytest.mark.e2e


def _start(workdir: Path, log_name: str) -> RunningStack:
    return start_stack(
        workdir,
        database_url=None,
        bootstrap_servers=None,
        slack_webhook_url=None,
        smtp_url=None,
        extra_env={"KIZASHI_LOG_LEVEL": "WARNING"},
        timeout_s=180,
        log_name=log_name,
        up_args=("--broker", "kafka"),
    )


async def test_up_with_local_kafka_keeps_what_it_acknowledged_across_a_stop():
    try:
        kafka_lib()
    except KafkaNotInstalled as error:
        pytest.skip(str(error))
    # Not under pytest's basetemp: PostgreSQL runs as another user when the tests run as root.
    workdir = Path(tempfile.mkdtemp(prefix="kizashi-kafka-up-"))
    stack = None
    try:
        stack = await asyncio.to_thread(_start, workdir, "first.log")
        assert "starting Apache Kafka (one node" in stack.log_path.read_text()
        assert (workdir / "stack" / "kafka" / "data" / "meta.properties").exists()
        scoring = stack.state()["services"]["scoring"]["pid"]
        os.kill(scoring, signal.SIGSTOP)  # nothing is consumed before the stop
        story = Story()
        client = Client(stack)
        for index in range(10):
            response = await client.post([story.usage(f"k{index}") for _ in range(20)])
            assert response.status_code == 202, response.text
        await client.close()
        stack.process.send_signal(signal.SIGINT)
        os.kill(scoring, signal.SIGKILL)
        assert await asyncio.to_thread(stack.process.wait, 120) == 0, stack.log()
        assert "draining" not in stack.log_path.read_text()  # Kafka keeps its log: no drain

        stack = await asyncio.to_thread(_start, workdir, "second.log")
        faults = SimpleNamespace(stack=stack, database_url=stack.database_url)
        await wait_applied(faults, Counter(client.accepted), within=120)
    finally:
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        shutil.rmtree(workdir, ignore_errors=True)
