"""`kizashi bench scale --accounts N [--json]`: what the work costs as the accounts grow.

It loads N accounts set-based (kizashi.tools.bench.scaleload: `kizashi bench console`'s loader,
with the rows scoring and triggers compute for them), 1 % of them active and due for both
sweeps, into an embedded PostgreSQL (or an empty KIZASHI_DATABASE_URL), then measures, each
figure next to a baseline from the same run:

- each silence sweep (scoring's re-evaluation, triggers' time-driven rules): one run with
  the 1 % due, one with nothing due, one with 100 due (the same count at every N: it must
  cost the same at every N), its time and the rows and buffers it touched on its tables
  (pg_stat_user_tables, pg_statio_user_tables), and how many sequential scans it made.
  Baselines: scoring re-scoring the same 100 accounts by id (`rescore_accounts`, no search
  for due accounts), and a bare primary-key SELECT of triggers' 100 rows;
- the accounts API (scoring's GET /v1/accounts through the service's own FastAPI app, with
  its bearer-token auth), p50/p99, next to a bare indexed SELECT of the same page;
- the console's map and account page (`kizashi bench console`'s timing), p50/p99;
- the database size per account (pg_total_relation_size of each table / N) and per event
  (a `processed_events` row; the input event as a Kafka record).

The services' messages go to a counting stand-in, not a broker.
"""

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

import httpx
import orjson

from kizashi.tools.bench.console import database, say, time_pages
from kizashi.tools.bench.harness import machine_description, percentile
from kizashi.tools.bench.scaleload import ACTIVE_EVERY, load_all, storage
from kizashi.tools.settings import ToolSettings

FIXED_DUE = 100
CONSOLE_PAGES = {"map (everyone's)", "account"}
TABLES = {
    "scoring": ("accounts", "scores", "score_history"),
    "triggers": ("trigger_accounts", "rule_states", "signals"),
}
API_TOKEN = "bench-scale-token"  # noqa: S105 - the in-process app's own, for this run only


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")


def _active_ids(accounts: int) -> list[str]:
    return [f"acct-{n:06d}" for n in range(1, accounts + 1) if n % ACTIVE_EVERY == 1 and n % 50]


async def _connect(url: str):
    import asyncpg

    from kizashi.runtime.db import async_url

    return await asyncpg.connect(async_url(url).replace("+asyncpg", ""))


# --- the sweeps ------------------------------------------------------------------------------


async def _table_counters(connection, tables: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Per table: sequential scans, rows read (by them and through indexes), rows written,
    buffers touched (heap and index, hit or read)."""
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    rows = await connection.fetch(
        """
        SELECT t.relname::text AS name, t.seq_scan AS seq_scans,
               t.seq_tup_read + coalesce(t.idx_tup_fetch, 0) AS rows_read,
               t.n_tup_ins + t.n_tup_upd + t.n_tup_del AS rows_written,
               io.heap_blks_read + io.heap_blks_hit + coalesce(io.idx_blks_read, 0)
                 + coalesce(io.idx_blks_hit, 0) AS blocks
        FROM pg_stat_user_tables t JOIN pg_statio_user_tables io USING (relid)
        WHERE t.relname = ANY($1::text[])
        """,
        list(tables),
    )
    return {row["name"]: {k: v for k, v in row.items() if k != "name"} for row in rows}


async def _measured(url: str, tables: tuple[str, ...], state, work) -> dict:
    """Time `work(state)`, then the counters it moved on `tables`. `state` has an engine of
    one connection; the statistics that connection gathered are flushed before reading."""
    from kizashi.runtime.db import raw_transaction

    observer = await _connect(url)
    try:
        async with raw_transaction(state.engine) as connection:  # connected before the clock
            await connection.execute("SELECT pg_stat_force_next_flush()")
        before = await _table_counters(observer, tables)
        started = time.perf_counter()
        accounts = await work(state)
        elapsed = time.perf_counter() - started
        async with raw_transaction(state.engine) as connection:
            await connection.execute("SELECT pg_stat_force_next_flush()")
        after = await _table_counters(observer, tables)
    finally:
        await observer.close()
    counters = ("seq_scans", "rows_read", "rows_written", "blocks")
    moved = {k: sum(after[t][k] - before[t][k] for t in before) for k in counters}
    scanned = sorted(t for t in before if after[t]["seq_scans"] > before[t]["seq_scans"])
    return {
        "accounts": accounts,
        "ms": round(elapsed * 1000, 1),
        **moved,
        "seq_scanned": scanned,
    }


async def _make_due(url: str, table: str, column: str, ids: list[str], at: datetime) -> None:
    connection = await _connect(url)
    try:
        await connection.execute(
            f"UPDATE {table} SET {column} = $2 WHERE account_id = ANY($1::text[])",  # noqa: S608
            ids,
            at,
        )
    finally:
        await connection.close()


def _scoring_state(url: str, settings: ToolSettings):
    from kizashi.runtime.db import create_engine
    from kizashi.runtime.lifecycle import ServiceRuntime
    from kizashi.scoring.config import load_scoring_config
    from kizashi.scoring.settings import ScoringSettings
    from kizashi.scoring.state import ScoringState
    from kizashi.tools.bench.scaleload import CountingProducer

    scoring_settings = ScoringSettings(
        database_url=url, api_token=API_TOKEN, log_level="WARNING", config_dir=settings.config_dir
    )
    runtime = ServiceRuntime(
        service="scoring", settings=scoring_settings, engine=create_engine(url, pool_size=1)
    )
    runtime.producer = CountingProducer()  # type: ignore[assignment]
    return ScoringState(runtime=runtime, config=load_scoring_config(settings.config_dir))


async def scoring_sweep(url: str, settings: ToolSettings, active: list[str]) -> dict:
    from kizashi.scoring.sweep import SWEEP_BATCH, rescore_accounts, sweep_once

    service = _scoring_state(url, settings)
    tables = TABLES["scoring"]
    fixed = active[:FIXED_DUE]

    async def by_id(state) -> int:
        now = datetime.now(UTC)
        done = 0
        for start in range(0, len(fixed), SWEEP_BATCH):
            ids = fixed[start : start + SWEEP_BATCH]
            done += await rescore_accounts(state, ids, cause="sweep", now=now)
        return done

    try:
        runs = {"due_1pct": await _measured(url, tables, service, sweep_once)}
        runs["none_due"] = await _measured(url, tables, service, sweep_once)
        await _make_due(url, "scores", "next_check_at", fixed, datetime.now(UTC))
        runs["due_100"] = await _measured(url, tables, service, sweep_once)
        runs["baseline_by_id"] = await _measured(url, tables, service, by_id)
        runs["published"] = service.producer.messages
    finally:
        await service.engine.dispose()
    return runs


async def triggers_sweep(url: str, settings: ToolSettings, active: list[str]) -> dict:
    from kizashi.runtime.db import raw_transaction
    from kizashi.tools.bench.scaleload import triggers_state
    from kizashi.triggers.sweep import sweep_once

    service = triggers_state(url, settings)
    tables = TABLES["triggers"]
    fixed = active[:FIXED_DUE]

    async def by_key(state) -> int:
        async with raw_transaction(state.engine) as connection:
            rows = await connection.fetch(
                """
                SELECT account_id, latest::text, cs_history::text FROM trigger_accounts
                WHERE account_id = ANY($1::text[]) FOR UPDATE
                """,
                fixed,
            )
            await connection.fetch(
                "SELECT * FROM rule_states WHERE account_id = ANY($1::text[])", fixed
            )
        return len(rows)

    try:
        runs = {"due_1pct": await _measured(url, tables, service, sweep_once)}
        runs["none_due"] = await _measured(url, tables, service, sweep_once)
        await _make_due(url, "trigger_accounts", "next_sweep_at", fixed, datetime.now(UTC))
        runs["due_100"] = await _measured(url, tables, service, sweep_once)
        runs["baseline_by_key"] = await _measured(url, tables, service, by_key)
        runs["published"] = service.producer.messages
    finally:
        await service.engine.dispose()
    return runs


# --- the accounts API ------------------------------------------------------------------------

API_REQUESTS = (
    ("accounts list", "/v1/accounts"),
    ("accounts list, segment", "/v1/accounts?segment=expand"),
    ("accounts list, segment+priority", "/v1/accounts?segment=nurture&priority=low&order=cs"),
)


def _summary(label: str, samples: list[float]) -> dict:
    return {
        "request": label,
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(percentile(samples, 99) or 0, 1),
        "max_ms": round(max(samples), 1),
    }


async def accounts_api(url: str, settings: ToolSettings, requests: int) -> tuple[list, dict]:
    from kizashi.scoring.app import create_app

    service = _scoring_state(url, settings)
    app = create_app(service.runtime.settings)
    app.state.service = service  # what the lifespan's setup builds, without its consumers
    results = []
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://scoring", headers=headers
        ) as client:
            for label, path in API_REQUESTS:
                samples = []
                for attempt in range(requests + 1):
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200 or not response.json()["items"]:
                        raise SystemExit(f"{path} answered {response.status_code}")
                    if attempt:
                        samples.append(elapsed)
                results.append(_summary(label, samples))
                say(f"  {label}: p50 {results[-1]['p50_ms']} ms")
    finally:
        await service.engine.dispose()
    # The floor: the first page's rows, one indexed SELECT on an open connection.
    connection = await _connect(url)
    try:
        samples = []
        for attempt in range(requests + 1):
            started = time.perf_counter()
            await connection.fetch(
                "SELECT account_id, cs, op, segment, priority, computed_at FROM scores "
                "ORDER BY op DESC, account_id DESC LIMIT 51"
            )
            if attempt:
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return results, _summary("bare indexed SELECT of a page", samples)


# --- the run ---------------------------------------------------------------------------------

RUN_LABELS = {
    "due_1pct": "1 % due",
    "none_due": "nothing due",
    "due_100": f"{FIXED_DUE} due",
    "baseline_by_id": f"baseline: the {FIXED_DUE} by id",
    "baseline_by_key": f"baseline: the {FIXED_DUE} by key",
}


async def _bench(url: str, args: argparse.Namespace, settings: ToolSettings) -> dict:
    now = datetime.now(UTC)
    loading, made = await load_all(url, args.accounts, settings, now)
    say("database size …")
    sizes = await storage(url, args.accounts, made)
    active = _active_ids(args.accounts)
    say(f"the sweeps ({len(active):,} accounts due) …")
    sweeps = {
        "scoring": await scoring_sweep(url, settings, active),
        "triggers": await triggers_sweep(url, settings, active),
    }
    for runs in sweeps.values():
        due = runs["due_1pct"]
        due["ms_per_account"] = round(due["ms"] / max(1, due["accounts"]), 3)
        baseline = runs.get("baseline_by_id") or runs["baseline_by_key"]
        runs["ratio_100_to_baseline"] = round(runs["due_100"]["ms"] / baseline["ms"], 2)
    say("the accounts API …")
    api, api_floor = await accounts_api(url, settings, args.requests)
    say("the console …")
    console, background = await time_pages(url, args.requests, now, only=CONSOLE_PAGES)
    return {
        "accounts": args.accounts,
        "active": len(active),
        "requests": args.requests,
        "machine": machine_description(),
        "load_s": {k: round(v, 1) for k, v in loading.items()},
        "sweeps": sweeps,
        "accounts_api": api,
        "accounts_api_baseline": api_floor,
        "console": console,
        # Every 30 s per console replica, in the background (the segment moves are only
        # computed once a page asks for them: none of these does).
        "console_map_digest_ms": background["map digest"],
        "storage": sizes,
    }


def _print(result: dict) -> None:
    print(
        f"{result['accounts']:,} accounts, {result['active']:,} active (1 %); "
        f"{result['requests']} requests per page; {result['machine']}"
    )
    print(
        f"{'sweep':9} {'run':26} {'accounts':>8} {'ms':>8} {'rows read':>10} "
        f"{'rows written':>12} {'blocks':>8} {'seq scans':>9}"
    )
    for name, runs in result["sweeps"].items():
        for key, label in RUN_LABELS.items():
            if key in runs:
                r = runs[key]
                print(
                    f"{name:9} {label:26} {r['accounts']:8,} {r['ms']:8.1f} {r['rows_read']:10,} "
                    f"{r['rows_written']:12,} {r['blocks']:8,} {r['seq_scans']:9} "
                    + " ".join(r["seq_scanned"])
                )
        print(
            f"{name:9} {FIXED_DUE} due / baseline: ratio {runs['ratio_100_to_baseline']}; "
            f"1 % due: {runs['due_1pct']['ms_per_account']} ms per account"
        )
    print(f"{'request':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = [*result["accounts_api"], result["accounts_api_baseline"]]
    rows += [{**page, "request": f"console: {page['page']}"} for page in result["console"]]
    for row in rows:
        print(f"{row['request']:34} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['max_ms']:8.1f}")
    sizes = result["storage"]
    per = sizes["per_account_bytes"]
    print(
        "bytes per account: "
        + ", ".join(f"{name} {per[name]:,}" for name in sorted(per, key=per.get, reverse=True))
        + f"; total {sizes['total_per_account_bytes']:,}"
    )
    print(
        f"bytes per event: processed_events row {sizes['per_event_processed_bytes']} "
        f"(of {sizes['processed_events_rows']:,}), Kafka record {sizes['per_event_kafka_bytes']}; "
        f"scores.changed {sizes['scores_changed_bytes']['active']:,} (active), "
        f"{sizes['scores_changed_bytes']['idle']:,} (idle)"
    )


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    if args.accounts < 200 or args.requests < 1:
        raise SystemExit("--accounts ≥ 200 (1 % of them active), --requests ≥ 1")
    with database(settings) as (url, embedded):
        result = asyncio.run(_bench(url, args, settings))
    result["embedded"] = embedded
    _print(result)
    if args.json:
        print(orjson.dumps(result).decode())
    return 0
