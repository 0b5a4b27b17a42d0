"""`kizashi rescore` recomputes every score with the current scoring.yaml, shows progress,
and is safe while the consumer writes the same accounts."""

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources

import asyncpg

from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.topics import SCORES_CHANGED
from kizashi.runtime.db import is_transient, raw_transaction, retry_transient
from kizashi.scoring.config import parse_scoring_config
from kizashi.scoring.consumer import handle_events
from kizashi.tools.rescore import ProgressBar, rescore_all
from tests.integration.scoring_support import (
    account_row,
    changes_for,
    event,
    read_topic,
    records,
    scoring_service,
    usage,
)

DEFAULT_YAML = resources.files("kizashi.scoring").joinpath("defaults", "scoring.yaml").read_text()
# A new model: satisfaction counts far more, and the version says so.
NEW_YAML = DEFAULT_YAML.replace('version: "2026.4"', 'version: "test-nps-heavy"').replace(
    "    nps: 12                 #", "    nps: 120                #"
)

assert "nps: 120" in NEW_YAML and "test-nps-heavy" in NEW_YAML


async def _versions(service) -> dict[str, int]:
    async with raw_transaction(service.engine) as connection:
        rows = await connection.fetch(
            "SELECT config_version, count(*) AS n FROM scores GROUP BY config_version"
        )
    return {row["config_version"]: row["n"] for row in rows}


async def test_rescore_recomputes_every_account_while_events_arrive(servers) -> None:
    now = datetime.now(UTC)
    accounts = [f"r-{uuid.uuid4().hex[:8]}" for _ in range(25)]
    unhappy = accounts[0]
    async with scoring_service(servers) as old:
        await handle_events(
            old,
            records(
                [usage(a, now - timedelta(hours=i)) for i, a in enumerate(accounts)]
                + [event("survey_response", unhappy, now, survey_id="q", nps=0)]
            ),
        )
        before = await account_row(old, unhappy)
    assert before["config_version"] == "2026.4"

    new_config = parse_scoring_config(NEW_YAML)
    async with scoring_service(servers, config=new_config) as service:
        out = io.StringIO()
        progress = ProgressBar(total=len(accounts), write=out.write, tty=False)
        more = [usage(a, now, user_id="late") for a in accounts]

        async def keep_consuming() -> None:
            for start in range(0, len(more), 5):
                await handle_events(service, records(more[start : start + 5]))

        done, _ = await asyncio.gather(
            rescore_all(service, batch=4, progress=progress), keep_consuming()
        )
        progress.advance(0, final=True)
        assert done == len(accounts)
        assert await _versions(service) == {"test-nps-heavy": len(accounts)}
        after = await account_row(service, unhappy)
        # Both writers' work is there: the concurrent events were applied, once each.
        assert after["state"]["counts"]["product_usage"] == 2
        assert after["processed"] == 3
    # A detractor weighs ten times more in the new model.
    assert after["cs"] < before["cs"] - 10
    last_line = out.getvalue().strip().splitlines()[-1]
    assert f"{len(accounts)}/{len(accounts)} accounts" in last_line and "100%" in last_line
    assert "ETA" in last_line
    # Whichever writer got there first under the new model published it.
    latest = (await changes_for(servers["bootstrap"], unhappy))[-1]
    assert latest.config_version == "test-nps-heavy" and latest.after.cs == after["cs"]


async def test_a_deadlock_on_the_raw_connection_is_retried(servers) -> None:
    """Two transactions taking two rows in opposite orders: PostgreSQL kills one with 40P01,
    raised by asyncpg itself, which rescore (and the consumer) must treat as transient."""
    table = f"deadlock_probe_{uuid.uuid4().hex[:8]}"
    first, second = await asyncpg.connect(servers["url"]), await asyncpg.connect(servers["url"])
    try:
        await first.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)")
        await first.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
        update = f"UPDATE {table} SET n = n + 1 WHERE id = $1"  # noqa: S608 - our own table
        one, two = first.transaction(), second.transaction()
        await one.start()
        await two.start()
        await first.execute(update, 1)
        await second.execute(update, 2)
        outcomes = await asyncio.gather(
            first.execute(update, 2), second.execute(update, 1), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], asyncpg.DeadlockDetectedError)
        assert is_transient(errors[0])
        for transaction in (one, two):
            with contextlib.suppress(asyncpg.PostgresError):
                await transaction.rollback()

        attempts = []

        async def deadlocks_once() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise errors[0]
            return "done"

        assert await retry_transient(deadlocks_once, first_delay=0.01) == "done"
        assert len(attempts) == 2
        await first.execute(f"DROP TABLE {table}")
    finally:
        await first.close()
        await second.close()


async def test_the_rescore_command(servers, tmp_path) -> None:
    # Back to the default weights under a new version: the detractor's CS rises again.
    (tmp_path / "scoring.yaml").write_text(DEFAULT_YAML.replace('"2026.4"', '"test-cli"'))
    env = {
        **os.environ,
        "KIZASHI_DATABASE_URL": servers["url"],
        "KIZASHI_KAFKA_BOOTSTRAP_SERVERS": servers["bootstrap"],
        "KIZASHI_CONFIG_DIR": str(tmp_path),
        "KIZASHI_DATA_DIR": str(tmp_path / "data"),
    }
    async with scoring_service(servers) as service:
        await handle_events(
            service, records([usage(f"cli-{uuid.uuid4().hex[:8]}", datetime.now(UTC))])
        )
        total = sum((await _versions(service)).values())
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kizashi.tools.cli", "rescore", "--batch", "7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"re-scored {total:,} accounts with scoring.yaml version 'test-cli'" in result.stdout
    assert f"{total}/{total} accounts 100%" in result.stderr
    async with scoring_service(servers) as service:
        assert await _versions(service) == {"test-cli": total}
    published = [
        ScoresChanged.model_validate_json(r.value)
        for r in await read_topic(servers["bootstrap"], SCORES_CHANGED)
    ]
    assert any(c.cause == "rescore" and c.config_version == "test-cli" for c in published)

    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kizashi.tools.cli", "rescore", "--batch", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "--batch must be between 1 and 10000" in bad.stderr
