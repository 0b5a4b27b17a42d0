"""`kizashi bench console`: how fast the console answers its pages with many accounts.

It loads `--accounts` accounts set-based into a database (an embedded PostgreSQL in a
temporary folder unless KIZASHI_DATABASE_URL is set; then into that database, which should be
an empty scratch one): accounts with CRM facts, their scores with a breakdown, a score-history
point every `--every-days` days over 90 days (a random walk, so accounts change segments), a
signal on every 10th account with two deliveries and an action. Then it times each page
server-side: the console's app runs in this process and is called through httpx's ASGI
transport (no sockets), signed in as a manager (everyone's accounts) and as a rep (their own),
`--requests` times each after one warm-up, and prints p50 / p99 / max per page, and how
long the snapshots the pages read (everyone's map digest, the segment moves) took to compute
in the background.

The goal (issue #15): every page under 300 ms at 100,000 accounts.
"""

import argparse
import asyncio
import contextlib
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from kizashi.tools.bench.harness import machine_description, percentile
from kizashi.tools.settings import ToolSettings

GOAL_MS = 300.0
REPS = 50
CUTOFFS = {"cs_high": 60.0, "op_high": 50.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--every-days", type=int, default=6, help="history point spacing")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the pages on the accounts a previous run loaded into KIZASHI_DATABASE_URL",
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def database(settings: ToolSettings):
    """(database URL, embedded?): an embedded PostgreSQL in a temporary folder by default."""
    from kizashi.tools.migrate import upgrade

    if settings.database_url:
        upgrade(settings.database_url)
        yield settings.database_url, False
        return
    from kizashi.tools.embedded import EmbeddedPostgres, free_port

    with tempfile.TemporaryDirectory(prefix="kizashi-bench-") as folder:
        say("starting an embedded PostgreSQL …")
        postgres = EmbeddedPostgres(Path(folder), free_port())
        postgres.start()
        try:
            upgrade(postgres.url)
            yield postgres.url, True
        finally:
            postgres.stop()


_BREAKDOWN = orjson.dumps(
    [
        {
            "index": index,
            "component": name,
            "raw": 0.5,
            "weight": 0.2,
            "points": 10.0,
            "explanation": f"The account's {name.replace('_', ' ')} is about average for its plan.",
        }
        for index, names in (
            ("cs", ("usage_trend", "seat_utilization", "nps", "support_load", "breadth")),
            ("op", ("seat_pressure", "intent", "pricing_visits", "fit", "growth")),
        )
        for name in names
    ]
).decode()

# Set-based loading: one statement per table. `h` is a stable pseudo-random number per
# (account, salt) in [0, 1), so a rerun loads the same data.
_H = "(('x' || substr(md5(n::text || '{salt}'), 1, 8))::bit(32)::bigint / 4294967296.0)"


def _h(salt: str) -> str:
    return _H.replace("{salt}", salt)


# 'acct-000042'; past 999,999 the number just gets longer (lpad would cut it short).
_ACCOUNT_ID = "'acct-' || lpad(n::text, greatest(6, length(n::text)), '0')"


@dataclass
class RowShape:
    """What the loaded rows carry beyond the console's needs. By default an empty feature
    state, no features and no sweep time; `kizashi bench scale` passes rows the scoring
    pipeline computed, one set for the active accounts (n % active_every = 1) and one for the
    others, so the rows have their real sizes and the sweep its real schedule."""

    state: tuple[str, str] = ("{}", "{}")  # (active, idle) accounts.state, JSON text
    features: tuple[str, str] = ("{}", "{}")  # scores.features
    breakdown: str = ""  # scores.breakdown (default: _BREAKDOWN)
    # scores.next_check_at: the active accounts' and the idle ones' (then + n % 365 days,
    # renewals spread over a year); None: never
    next_check: tuple[datetime | None, datetime | None] = (None, None)
    active_every: int = 100


def _segment(cs: str, op: str) -> str:
    return (
        f"CASE WHEN {cs} >= 60 THEN CASE WHEN {op} >= 50 THEN 'expand' ELSE 'nurture' END "
        f"ELSE CASE WHEN {op} >= 50 THEN 'recover' ELSE 'at_risk' END END"
    )


async def load(
    url: str, accounts: int, every_days: int, now: datetime, shape: RowShape | None = None
) -> dict[str, float]:
    import asyncpg

    from kizashi.runtime.db import async_url

    shape = shape or RowShape()
    active = f"n % {int(shape.active_every)} = 1"
    connection = await asyncpg.connect(async_url(url).replace("+asyncpg", ""))
    timings: dict[str, float] = {}

    async def timed(name: str, sql: str, *args) -> None:
        started = time.perf_counter()
        await connection.execute(sql, *args)
        timings[name] = time.perf_counter() - started
        say(f"  {name}: {timings[name]:.1f} s")

    try:
        say(f"loading {accounts:,} accounts …")
        await timed(
            "accounts",
            f"""
            INSERT INTO accounts (account_id, facts, state)
            SELECT {_ACCOUNT_ID},
                   jsonb_build_object(
                     'name', 'Account ' || n,
                     'owner_email', 'rep' || (n % {REPS}) || '@bench.example',
                     'plan', (ARRAY['Starter', 'Team', 'Growth', 'Enterprise'])[1 + n % 4],
                     'arr', round(exp(8 + 6 * {_h("arr")})),
                     'seats', 5 + n % 200,
                     'renewal_date', (date '2027-01-01' + (n % 365))::text),
                   (CASE WHEN {active} THEN $2 ELSE $3 END)::json
            FROM generate_series(1, $1) n
            """,  # noqa: S608 - constant fragments only
            accounts,
            *shape.state,
        )
        # 2 % have too little data: no score, no history.
        scored = "n % 50 <> 0"
        cs_now = f"(100 * (0.15 + 0.7 * {_h('cs')}))"
        op_now = f"(100 * (0.1 + 0.8 * {_h('op')}))"
        await timed(
            "scores",
            f"""
            INSERT INTO scores (account_id, cs, op, segment, priority, published_cs,
                                published_op, breakdown, features, config_version,
                                computed_at, next_check_at)
            SELECT {_ACCOUNT_ID}, cs, op, {_segment("cs", "op")},
                   CASE WHEN {_h("prio")} < 0.1 THEN 'high' WHEN {_h("prio")} < 0.4
                        THEN 'medium' ELSE 'low' END, cs, op,
                   $2::json, (CASE WHEN {active} THEN $4 ELSE $5 END)::json, 'bench', $3,
                   CASE WHEN {active} THEN $6::timestamptz
                        ELSE $7::timestamptz + make_interval(days => n % 365) END
            FROM (SELECT n, {cs_now} AS cs, {op_now} AS op FROM generate_series(1, $1) n
                  WHERE {scored}) s
            """,  # noqa: S608 - constant fragments only
            accounts,
            shape.breakdown or _BREAKDOWN,
            now - timedelta(minutes=5),
            *shape.features,
            *shape.next_check,
        )
        # History: a point every `every_days` days over 90 days, drifting towards today's
        # scores (the last point is today's score), so some accounts change segments.
        noise = _h("d").replace("n::text", "n::text || d::text")
        drift = f"(d::float8 / 90) * 30 * ({noise} - 0.5)"
        await timed(
            "score_history",
            f"""
            INSERT INTO score_history (account_id, at, cs, op, segment, priority)
            SELECT s.account_id, $2::timestamptz - make_interval(days => d) - interval '5 min',
                   cs, op, {_segment("cs", "op")}, s.priority
            FROM (
              SELECT sc.account_id, sc.priority, d,
                     least(100, greatest(0, sc.cs + {drift})) AS cs,
                     least(100, greatest(0, sc.op - {drift})) AS op
              FROM scores sc
              CROSS JOIN LATERAL (SELECT substr(sc.account_id, 6)::int AS n) k
              CROSS JOIN generate_series(0, 90, $1::int) d
            ) s
            """,  # noqa: S608 - constant fragments only
            every_days,
            now,
        )
        await timed(
            "signals",
            f"""
            INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode, status,
                                 fired_at, payload)
            SELECT 'sig-' || n, {_ACCOUNT_ID},
                   CASE WHEN n % 20 = 0 THEN 'churn_risk' ELSE 'opportunity' END,
                   CASE WHEN n % 20 = 0 THEN 'detractor' ELSE 'expansion_intent' END,
                   'medium', '1',
                   (ARRAY['open', 'acknowledged', 'resolved'])[1 + n % 3],
                   $2::timestamptz - make_interval(days => n % 60),
                   jsonb_build_object('headline', 'Signal on Account ' || n,
                     'reasons', jsonb_build_array('a reason'),
                     'account', jsonb_build_object('name', 'Account ' || n,
                       'owner_email', 'rep' || (n % {REPS}) || '@bench.example'))
            FROM generate_series(10, $1, 10) n
            """,  # noqa: S608 - constant fragments only
            accounts,
            now,
        )
        await timed(
            "deliveries",
            """
            INSERT INTO deliveries (delivery_id, signal_id, receiver, channel, status, attempts,
                                    sent_at, payload)
            SELECT s.signal_id || ':' || c, s.signal_id,
                   CASE WHEN c = 'slack' THEN '#cs-alerts' ELSE s.payload -> 'account' ->>
                        'owner_email' END,
                   c, 'sent', 1, s.fired_at + interval '3 s', '{}'::jsonb
            FROM signals s CROSS JOIN unnest(ARRAY['slack', 'email']) c
            """,
        )
        await timed(
            "signal_actions",
            """
            INSERT INTO signal_actions (signal_id, action, actor, at)
            SELECT signal_id, 'acknowledged', payload -> 'account' ->> 'owner_email',
                   fired_at + interval '2 hours'
            FROM signals WHERE status <> 'open'
            """,
        )
        # As autovacuum would: statistics, and the visibility map for index-only scans.
        await timed("vacuum analyze", "VACUUM ANALYZE")
        return timings
    finally:
        await connection.close()


async def _session(url: str, email: str, role: str, now: datetime) -> str:
    import asyncpg

    from kizashi.runtime.db import async_url

    cookie = hashlib.sha256(email.encode()).hexdigest()
    connection = await asyncpg.connect(async_url(url).replace("+asyncpg", ""))
    try:
        user_id = await connection.fetchval(
            """
            INSERT INTO users (email, name, role, password_hash) VALUES ($1, $1, $2, 'x')
            ON CONFLICT (email) DO UPDATE SET role = excluded.role RETURNING id
            """,
            email,
            role,
        )
        from kizashi.console.sessions import session_hash

        await connection.execute(
            """
            INSERT INTO user_sessions (id, user_id, csrf_token, expires_at)
            VALUES ($1, $2, 'csrf', $3) ON CONFLICT (id) DO NOTHING
            """,
            session_hash(cookie),
            user_id,
            now + timedelta(days=1),
        )
    finally:
        await connection.close()
    return cookie


def pages() -> list[tuple[str, str, str]]:
    """(label, who, path)."""
    return [
        ("map (everyone's)", "manager", "/?owner=all&trail=7"),
        ("map, trail 90 d", "manager", "/?owner=all&trail=90"),
        ("map (a rep's own)", "rep", "/"),
        ("map, segment+priority", "manager", "/?owner=all&segment=expand&priority=high"),
        ("account", "manager", "/accounts/acct-000010"),
        ("segments (everyone's)", "manager", "/segments?owner=all"),
        ("segments (a rep's own)", "rep", "/segments"),
        ("accounts list", "manager", "/accounts?owner=all&segment=nurture&priority=low"),
        (
            "accounts list, moved",
            "manager",
            "/accounts?owner=all&moved_from=nurture&segment=expand&days=30",
        ),
        ("inbox", "manager", "/signals"),
    ]


async def time_pages(
    url: str, requests: int, now: datetime, only: set[str] | None = None
) -> tuple[list[dict], dict]:
    """Each page of `pages()` (those labelled in `only`, if given) timed server-side."""
    from kizashi.console.app import create_app
    from kizashi.console.sessions import SESSION_COOKIE
    from kizashi.console.settings import ConsoleSettings

    cookies = {
        "manager": await _session(url, "manager@bench.example", "manager", now),
        "rep": await _session(url, "rep1@bench.example", "rep", now),
    }
    settings = ConsoleSettings(database_url=url, log_level="WARNING")
    app = create_app(settings)
    results = []
    async with app.router.lifespan_context(app):
        # Scoring's GET /v1/segments, answered in-process (the console caches it anyway).
        app.state.service.scoring = httpx.AsyncClient(
            base_url="http://scoring",
            transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"cutoffs": CUTOFFS})),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            for label, who, path in pages():
                if only is not None and label not in only:
                    continue
                client.cookies.set(SESSION_COOKIE, cookies[who])
                samples = []
                for attempt in range(requests + 1):
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"{path} answered {response.status_code}")
                    if attempt:  # the first one warms caches and connections
                        samples.append(elapsed)
                results.append(
                    {
                        "page": label,
                        "path": path,
                        "p50_ms": round(statistics.median(samples), 1),
                        "p99_ms": round(percentile(samples, 99) or 0, 1),
                        "max_ms": round(max(samples), 1),
                        "bytes": len(response.content),
                    }
                )
                say(f"  {label}: p50 {results[-1]['p50_ms']} ms")
        state = app.state.service
        # What the background computes for those pages (kizashi.console.snapshot).
        background = {
            "map digest": round(state.map.took_s * 1000, 1),
            "segment moves": round(state.moves.took_s * 1000, 1),
        }
    return results, background


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    if args.accounts < 10 or args.requests < 1 or not 1 <= args.every_days <= 90:
        raise SystemExit("--accounts ≥ 10, --requests ≥ 1, 1 ≤ --every-days ≤ 90")
    now = datetime.now(UTC)
    with database(settings) as (url, embedded):
        loading = {} if args.reuse else asyncio.run(load(url, args.accounts, args.every_days, now))
        results, background = asyncio.run(time_pages(url, args.requests, now))
    print(f"{args.accounts:,} accounts; {args.requests} requests per page; {machine_description()}")
    print(f"{'page':26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'KB':>6}")
    for row in results:
        print(
            f"{row['page']:26} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['max_ms']:8.1f} "
            f"{row['bytes'] / 1024:6.0f}"
        )
    worst = max(row["p99_ms"] for row in results)
    print(f"worst p99 {worst:.0f} ms (goal < {GOAL_MS:.0f} ms)")
    print(
        "computed in the background, not for a page: "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in background.items())
    )
    if args.json:
        print(
            orjson.dumps(
                {
                    "accounts": args.accounts,
                    "requests": args.requests,
                    "every_days": args.every_days,
                    "embedded": embedded,
                    "machine": machine_description(),
                    "load_s": {k: round(v, 2) for k, v in loading.items()},
                    "pages": results,
                    "worst_p99_ms": worst,
                    "background_ms": background,
                    "goal_ms": GOAL_MS,
                }
            ).decode()
        )
    return 0
