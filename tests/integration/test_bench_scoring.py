"""`kizashi bench scoring` runs end to end on real servers: replicas score every account of the
stream, the JSON line carries the figures, and the bench leaves nothing behind."""

import asyncio
import os
import subprocess
import sys

import asyncpg
import orjson

from kizashi.runtime.db import async_url


async def _leftovers(database_url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(async_url(database_url).replace("+asyncpg", ""))
    try:
        accounts = await connection.fetchval(
            "SELECT count(*) FROM accounts WHERE account_id LIKE 'bench-%'"
        )
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench\\_raw\\_%'"
        )
        return accounts, tables
    finally:
        await connection.close()


async def test_bench_scoring_reports_figures_and_cleans_up(database_url, bootstrap_servers):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZASHI_")}
    env["KIZASHI_DATABASE_URL"] = database_url
    env["KIZASHI_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers
    command = [sys.executable, "-m", "kizashi.tools.cli", "bench", "scoring", "--json"]
    command += ["--events", "3000", "--accounts", "150", "--replicas", "2"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert result["events"] == 3000 and result["replicas"] == 2
    # Every account of the stream (150 drawn at random from 150: nearly all) got its score.
    assert 140 <= result["accounts_scored"] <= 150
    assert result["scoring_batches"] >= 1 and result["baseline_batches"] >= 1
    assert result["events_per_s"] > 0 and result["baseline_events_per_s"] > 0
    expected_ratio = result["events_per_s"] / result["baseline_events_per_s"]
    assert abs(result["ratio"] - expected_ratio) < 0.01
    floor_ratio = result["decode_floor_events_per_s"] / result["baseline_events_per_s"]
    assert result["decode_floor_events_per_s"] > 0
    assert abs(result["decode_floor_ratio"] - floor_ratio) < 0.01
    assert "decode floor" in done.stdout and "days" in result
    assert "scoring ×2" in done.stdout and "ratio" in done.stdout
    assert "events committed" in done.stderr or "scoring:" in done.stderr  # progress shown
    assert await _leftovers(database_url) == (0, 0)


async def test_scoring_rate_for_bench_e2e_scores_every_account_and_cleans_up(
    database_url, bootstrap_servers
):
    """The closing phase of `kizashi bench e2e` (scoring alone on the stack's servers, then
    triggers alone on what it published): it checks that every account of its stream was
    scored and that triggers read every change, then removes both services' rows."""
    from kizashi.tools.bench.scoring_rate import measure_scoring

    rate = await measure_scoring(
        database_url, bootstrap_servers, events=2000, accounts=100, replicas=2
    )
    assert rate.events == 2000 and rate.replicas == 2
    assert rate.batches >= 1 and rate.seconds > 0
    assert rate.events_per_s == 2000 / rate.seconds
    triggers = rate.triggers
    assert triggers is not None and triggers.replicas == 2
    # Every account scored published at least its first score, and triggers read them all.
    assert triggers.changes >= 100 and triggers.batches >= 1
    assert triggers.changes_per_s == triggers.changes / triggers.seconds
    assert rate.changes_per_s == triggers.changes / rate.seconds
    assert await _leftovers(database_url) == (0, 0)
    assert await _triggers_leftovers(database_url) == 0


async def _triggers_leftovers(database_url: str) -> int:
    connection = await asyncpg.connect(async_url(database_url).replace("+asyncpg", ""))
    try:
        return await connection.fetchval(
            """SELECT (SELECT count(*) FROM trigger_accounts WHERE account_id LIKE 'bench-%')
                    + (SELECT count(*) FROM rule_states WHERE account_id LIKE 'bench-%')
                    + (SELECT count(*) FROM signals WHERE account_id LIKE 'bench-%')"""
        )
    finally:
        await connection.close()
