"""`kizashi bench scale` runs end to end on a real PostgreSQL: it loads the accounts, both
sweeps re-score exactly the due ones and none when nothing is due, the API and the console
answer, and the JSON line's figures agree with each other and with the database.

Its own database: the bench loads `acct-…` accounts and needs empty tables."""

import asyncio
import os
import subprocess
import sys

import asyncpg
import orjson
import pytest

from tests.support import infra

ACCOUNTS = 500
ACTIVE = 5  # n % 100 = 1 among 1..500; none of them is one of the 2 % left unscored


@pytest.fixture
async def scratch_database(database_url: str):
    async with infra.scratch_database(database_url, "kizashi_scale", migrated=False) as url:
        yield url


async def _counts(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        return {
            table: await connection.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
            for table in ("accounts", "scores", "trigger_accounts")
        } | {
            "templates": await connection.fetchval(
                "SELECT count(*) FROM trigger_accounts WHERE account_id LIKE 'tmpl-%'"
            ),
            "rule_states_accounts": await connection.fetchval(
                "SELECT count(DISTINCT account_id) FROM rule_states"
            ),
        }
    finally:
        await connection.close()


async def test_bench_scale_reports_consistent_figures(scratch_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZASHI_")}
    env["KIZASHI_DATABASE_URL"] = scratch_database
    command = [sys.executable, "-m", "kizashi.tools.cli", "bench", "scale", "--json"]
    command += ["--accounts", str(ACCOUNTS), "--requests", "3"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert result["accounts"] == ACCOUNTS and result["active"] == ACTIVE
    assert result["embedded"] is False

    for name in ("scoring", "triggers"):
        runs = result["sweeps"][name]
        # The due accounts, each once; then nothing; then the ones made due again.
        assert runs["due_1pct"]["accounts"] == ACTIVE, name
        assert runs["none_due"]["accounts"] == 0, name
        assert runs["none_due"]["rows_written"] == 0, name
        assert runs["due_100"]["accounts"] == min(ACTIVE, 100), name
        assert runs["due_1pct"]["rows_written"] >= ACTIVE, name
        assert runs["due_1pct"]["ms"] > 0 and runs["due_1pct"]["blocks"] > 0, name
        assert runs["due_1pct"]["ms_per_account"] == round(runs["due_1pct"]["ms"] / ACTIVE, 3)
        baseline = runs.get("baseline_by_id") or runs["baseline_by_key"]
        assert baseline["accounts"] == min(ACTIVE, 100), name
        ratio = runs["due_100"]["ms"] / baseline["ms"]
        assert abs(runs["ratio_100_to_baseline"] - ratio) < 0.01, name
    # Scoring's first sweep publishes each due account's scores.changed.
    assert result["sweeps"]["scoring"]["published"] >= ACTIVE

    assert [row["request"] for row in result["accounts_api"]][:1] == ["accounts list"]
    for row in [*result["accounts_api"], result["accounts_api_baseline"], *result["console"]]:
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
    assert {page["page"] for page in result["console"]} == {"map (everyone's)", "account"}

    storage = result["storage"]
    tables = storage["table_bytes"]
    assert {"accounts", "scores", "score_history", "trigger_accounts", "rule_states"} <= set(tables)
    for table, size in tables.items():
        assert storage["per_account_bytes"][table] == round(size / ACCOUNTS), table
    assert storage["total_per_account_bytes"] == round(sum(tables.values()) / ACCOUNTS)
    # Real rows: a feature state, a breakdown and features, a scores.changed of kilobytes.
    assert storage["per_account_bytes"]["accounts"] > 500
    assert storage["per_account_bytes"]["scores"] > 1000
    assert 100 < storage["per_event_processed_bytes"] < 1000
    assert 100 < storage["per_event_kafka_bytes"] < 1000
    assert storage["scores_changed_bytes"]["active"] > 1000

    counts = await _counts(scratch_database)
    scored = ACCOUNTS - ACCOUNTS // 50  # 2 % have no score
    assert counts == {
        "accounts": ACCOUNTS,
        "scores": scored,
        "trigger_accounts": scored,
        "templates": 0,  # the template accounts are gone
        "rule_states_accounts": scored,
    }
    assert "1 % due" in done.stdout and "bytes per account" in done.stdout
    assert "the sweeps" in done.stderr  # progress on stderr
