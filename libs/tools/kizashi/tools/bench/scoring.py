"""`kizashi bench scoring [--json]`: events/s through the scoring consumer, Kafka to PostgreSQL
committed, next to a baseline measured in the same run on an identical stream.

- scoring: the service's own handler (`kizashi.scoring.consumer.handle_events`) under the
  service's own `BatchConsumer`, with the service's batch size and fetch wait.
- baseline: what any correct consumer of these topics must do, without scoring: a bare
  aiokafka consumer that decodes each record's JSON (orjson), claims the batch's event ids in a
  scratch dedup table (one `unnest` insert, `ON CONFLICT DO NOTHING`), and writes one
  set-based upsert of per-account aggregates (events, newest `occurred_at`) per batch, in one
  transaction, then commits its offsets (issue #17: the baseline before decoded nothing and
  claimed nothing, so no consumer could come near it).
- decode floor: a bare consumer, scoring's own decode (each record validated against the
  input-event contract) and one upsert of counts per batch, one process, no model, no dedup.
  Not a goal: it shows how much of the ratio the contract alone takes.

All read the same generated stream (10k accounts, mixed types) from fresh topics, and the
clock runs from the first record handed over to the last offset committed. `--days` spreads
the events' `occurred_at` over that many past days (30 by default, the stream these figures
have always used: every batch then writes score-history points for past days, as a backfill
does); `--days 0` sends a live stream, every event of the last five minutes. With neither
KIZASHI_DATABASE_URL nor KIZASHI_KAFKA_BOOTSTRAP_SERVERS set, an embedded PostgreSQL and Tansu
are started in a temporary folder on free ports. Against configured servers, the bench uses
its own topics, its own account-id prefix (removed afterwards) and sends its `scores.changed`
to a bench topic, so a running stack never sees its accounts.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from kizashi.tools.settings import ToolSettings

PARTITIONS = 4
# Far above any real run (minutes at worst): only a stuck run hits it.
DEADLINE_S = 1800
# Mixed types, product usage dominant, as a SaaS product's event stream is.
TYPE_MIX = (
    ("product_usage", 0.62),
    ("web_visit", 0.14),
    ("email_engagement", 0.12),
    ("account_update", 0.08),
    ("survey_response", 0.04),
)
FEATURES = [f"feature-{i}" for i in range(12)]
PAGES = ["/pricing", "/product/analytics", "/docs/api", "/support/ticket", "/blog/news", "/"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="events in the stream")
    parser.add_argument("--accounts", type=int, default=10_000, help="distinct accounts")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated stream")
    parser.add_argument(
        "--replicas", type=int, default=2, help="scoring consumer processes, in one group"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=30,
        help="past days the events' times spread over (0: a live stream of the last 5 minutes)",
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- stream


LIVE_SPREAD_S = 300


def generate_stream(
    count: int, accounts: int, *, prefix: str, seed: int, now: datetime, days: int = 30
) -> list[tuple[str, str, bytes]]:
    """(event type, account id, JSON value as ingest writes it), in arrival order."""
    rng = random.Random(seed)
    spread_s = days * 86_400 if days > 0 else LIVE_SPREAD_S
    types = [kind for kind, _ in TYPE_MIX]
    weights = [weight for _, weight in TYPE_MIX]
    received = now.isoformat()
    stream = []
    for index in range(count):
        kind = rng.choices(types, weights)[0]
        account = f"{prefix}{rng.randrange(accounts):05d}"
        at = now - timedelta(seconds=rng.uniform(0, spread_s))
        event: dict = {
            "type": kind,
            "account_id": account,
            "event_id": f"{prefix}e{index}",
            "occurred_at": at.isoformat(),
            "received_at": received,
            "source": "bench",
            "properties": {},
        }
        if kind == "product_usage":
            event.update(
                user_id=f"u{rng.randrange(40)}",
                action="feature_used",
                feature=rng.choice(FEATURES),
                quantity=float(rng.randint(1, 5)),
            )
        elif kind == "web_visit":
            page = rng.choice(PAGES)
            event.update(url=f"https://example.com{page}", page_category=None)
        elif kind == "email_engagement":
            click = rng.random() < 0.3
            event.update(
                action="click" if click else "open",
                campaign_id=f"c{rng.randrange(20)}",
                tags=["cross_sell"] if click else [],
            )
        elif kind == "account_update":
            event.update(
                plan=rng.choice(["starter", "team", "pro", "enterprise"]),
                arr=float(rng.randrange(5, 500) * 1000),
                seats=rng.randrange(5, 200),
                renewal_date=(now + timedelta(days=rng.randrange(10, 365))).date().isoformat(),
            )
        else:
            event.update(survey_id="q", nps=rng.randrange(11), upsell_intent=rng.randrange(11))
        stream.append((kind, account, orjson.dumps(event)))
    return stream


async def produce(
    bootstrap: str, topic_of: Callable[[str], str], stream: list[tuple[str, str, bytes]]
) -> dict[TopicPartition, int]:
    """Send the stream; the offset after each partition's last record (what must commit)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        for start in range(0, len(stream), 5000):
            futures = [
                await producer.send(topic_of(kind), value, key=account.encode())
                for kind, account, value in stream[start : start + 5000]
            ]
            for meta in await asyncio.gather(*futures):
                tp = TopicPartition(meta.topic, meta.partition)
                ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


# ------------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """What a measured side records while it runs: when it was first handed records (wall
    clock, so that other processes can write it) and how many batches it handled."""

    first_batch_at: float = 0.0
    batches: int = 0


async def until_committed(
    label: str,
    watcher: AIOKafkaConsumer,
    ends: dict[TopicPartition, int],
    run: Callable[[], Run],
    check: Callable[[], None] = lambda: None,
) -> tuple[float, int]:
    """Wait until the group's committed offset reached every partition's end, reporting
    progress every 2 s: (seconds from the first batch handed over, batches). `check` runs
    on every poll and raises when the measured side cannot finish."""
    total = sum(ends.values())
    deadline = time.monotonic() + DEADLINE_S
    last_report = time.monotonic()
    while True:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label} did not finish within {DEADLINE_S} s")
        check()
        # One request for every partition (committed() takes one each): the watcher must
        # not load the broker it measures.
        committed = await watcher._coordinator.fetch_committed_offsets(list(ends))
        done_at = time.time()
        done = sum(
            min(max(committed[tp].offset, 0), end) if tp in committed else 0
            for tp, end in ends.items()
        )
        state = run()
        if done >= total:
            return done_at - state.first_batch_at, state.batches
        if time.monotonic() - last_report >= 2:
            last_report = time.monotonic()
            started = state.first_batch_at
            rate = done / max(done_at - started, 1e-9) if started else 0.0
            say(f"{label}: {done:,}/{total:,} events committed, {rate:,.0f}/s")
        await asyncio.sleep(0.05)


class _BenchProducer:
    """The service's producer, with `scores.changed` sent to the bench's own topic."""

    def __init__(self, producer, topic: str) -> None:
        self._producer, self._topic = producer, topic

    async def send_all(self, records) -> None:
        await self._producer.send_all([replace(r, topic=self._topic) for r in records])

    def __getattr__(self, name: str):
        return getattr(self._producer, name)


@dataclass(frozen=True)
class ReplicaPlan:
    """What a scoring replica needs to run; plain data, so it crosses into a spawned process."""

    url: str
    bootstrap: str
    topics: list[str]
    changed_topic: str
    group: str


def counted_handler(handle, status_of, first_batch_at, batches):
    """A consumer's batch handler that also keeps, across the bench's processes, the earliest
    moment a batch was handed over and how many batches were handled."""

    async def handler(records):
        # Wall clock (replicas are separate processes), from when the records were handed
        # over, before the consumer topped the batch up.
        handed_over = status_of().first_records_at or time.time()
        with first_batch_at.get_lock():
            if first_batch_at.value == 0 or handed_over < first_batch_at.value:
                first_batch_at.value = handed_over
        rejected = await handle(records)
        with batches.get_lock():
            batches.value += 1
        return rejected

    return handler


def _scoring_replica(plan: ReplicaPlan, first_batch_at, batches, stop) -> None:
    """A spawned process: one scoring consumer, as one replica of the service runs it."""
    asyncio.run(_serve_replica(plan, first_batch_at, batches, stop))


async def _serve_replica(plan: ReplicaPlan, first_batch_at, batches, stop) -> None:
    from kizashi.runtime.collector import tune_garbage_collector
    from kizashi.runtime.consumer import BatchConsumer
    from kizashi.runtime.db import create_engine
    from kizashi.runtime.kafka import Producer
    from kizashi.runtime.lifecycle import ServiceRuntime
    from kizashi.scoring.config import load_scoring_config
    from kizashi.scoring.consumer import handle_events
    from kizashi.scoring.state import ScoringState

    settings = ToolSettings()
    producer = Producer(
        plan.bootstrap, service="scoring", send_timeout_s=settings.kafka_send_timeout_s
    )
    await producer.start()
    engine = create_engine(plan.url, pool_size=settings.db_pool_size)
    runtime = ServiceRuntime(service="scoring", settings=settings, engine=engine)
    runtime.producer = _BenchProducer(producer, plan.changed_topic)  # type: ignore[assignment]
    service = ScoringState(runtime=runtime, config=load_scoring_config(settings.config_dir))
    tune_garbage_collector()  # as the scoring service does at start-up

    handler = counted_handler(
        lambda records: handle_events(service, records),
        lambda: consumer.status,
        first_batch_at,
        batches,
    )

    consumer = BatchConsumer(
        service="scoring",
        topics=plan.topics,
        bootstrap_servers=plan.bootstrap,
        handler=handler,
        dead_letters=producer,
        group_id=plan.group,
        max_batch=settings.scoring_max_batch,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    task = asyncio.create_task(consumer.run())
    stopped = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, stop.wait))
    try:
        # A consumer that fails (the service's runtime would restart it) ends the replica,
        # which the parent notices, instead of leaving it alive and idle.
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            stop.set()  # frees the thread waiting on it, so this process can exit
            task.result()
            raise RuntimeError("the scoring consumer stopped on its own")
    finally:
        consumer.stop()
        with contextlib.suppress(Exception):
            await task
        await producer.stop()
        await engine.dispose()


async def run_scoring(
    plan: ReplicaPlan, ends: dict[TopicPartition, int], replicas: int
) -> tuple[float, int]:
    """`replicas` scoring consumers in one group, each its own process as the deployed service
    runs (deploy/k8s/scoring.yaml); the clock runs from the first batch any of them is handed
    to the moment the group's committed offsets reach the end of every partition."""
    context = multiprocessing.get_context("spawn")  # no inherited event loop or sockets
    first_batch_at = context.Value("d", 0.0)
    batches = context.Value("i", 0)
    stop = context.Event()
    processes = [
        context.Process(
            target=_scoring_replica,
            args=(plan, first_batch_at, batches, stop),
            name=f"scoring-replica-{index}",
        )
        for index in range(replicas)
    ]
    for process in processes:
        process.start()
    watcher = AIOKafkaConsumer(
        bootstrap_servers=plan.bootstrap, group_id=plan.group, enable_auto_commit=False
    )
    await watcher.start()

    def check() -> None:
        for process in processes:
            if not process.is_alive():
                raise RuntimeError(f"{process.name} exited with code {process.exitcode}")

    try:
        return await until_committed(
            f"scoring ×{replicas}",
            watcher,
            ends,
            lambda: Run(first_batch_at.value, batches.value),
            check,
        )
    finally:
        await watcher.stop()
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


# ------------------------------------------------------------------------------ the command


@contextlib.contextmanager
def servers(settings: ToolSettings):
    """(database URL, bootstrap servers, embedded?) — embedded ones in a temporary folder."""
    if settings.database_url and settings.kafka_bootstrap_servers:
        yield settings.database_url, settings.kafka_bootstrap_servers, False
        return
    from kizashi.tools.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
    from kizashi.tools.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="kizashi-bench-") as folder:
        postgres = broker = None
        try:
            url = settings.database_url
            if not url:
                say("starting an embedded PostgreSQL …")
                postgres = EmbeddedPostgres(Path(folder), free_port())
                postgres.start()
                url = postgres.url
            bootstrap = settings.kafka_bootstrap_servers
            if not bootstrap:
                say("starting an embedded broker (Tansu) …")
                broker = EmbeddedBroker(Path(folder), free_port())
                broker.start()
                bootstrap = broker.bootstrap_servers
            upgrade(url)
            yield url, bootstrap, True
        finally:
            if broker is not None:
                broker.stop()
            if postgres is not None:
                postgres.stop()


def _like(prefix: str) -> str:
    return prefix.replace("_", r"\_") + "%"


async def _connect(url: str):
    import asyncpg

    from kizashi.runtime.db import async_url

    return await asyncpg.connect(async_url(url).replace("+asyncpg", ""))


async def _scored_accounts(url: str, prefix: str) -> int:
    """Accounts of this run with a committed score: the proof the scoring run did its work."""
    connection = await _connect(url)
    try:
        return await connection.fetchval(
            "SELECT count(*) FROM scores WHERE account_id LIKE $1", _like(prefix)
        )
    finally:
        await connection.close()


async def _forget_accounts(url: str, prefix: str) -> None:
    connection = await _connect(url)
    try:
        for table in ("scores", "accounts", "processed_events"):
            await connection.execute(
                f"DELETE FROM {table} WHERE account_id LIKE $1",  # noqa: S608 - fixed names
                _like(prefix),
            )
    finally:
        await connection.close()


async def _bench(
    args: argparse.Namespace, settings: ToolSettings, url: str, bootstrap: str
) -> dict:
    from kizashi.contracts.topics import EVENT_TOPICS
    from kizashi.runtime.kafka import ensure_topics
    from kizashi.tools.bench.scoring_baseline import run_baseline

    run = uuid.uuid4().hex[:8]
    prefix = f"bench-{run}-"
    scoring_topics = {kind: f"kizashi.bench.{run}.{kind}" for kind in EVENT_TOPICS}
    raw_topics = {kind: f"kizashi.bench.{run}.raw.{kind}" for kind in EVENT_TOPICS}
    changed_topic = f"kizashi.bench.{run}.scores.changed"
    await ensure_topics(
        bootstrap,
        [*scoring_topics.values(), *raw_topics.values(), changed_topic],
        partitions=PARTITIONS,
    )
    say(f"generating {args.events:,} events over {args.accounts:,} accounts …")
    stream = generate_stream(
        args.events,
        args.accounts,
        prefix=prefix,
        seed=args.seed,
        now=datetime.now(UTC),
        days=args.days,
    )
    say("producing the stream twice (scoring topics, baseline topics) …")
    scoring_ends = await produce(bootstrap, scoring_topics.__getitem__, stream)
    raw_ends = await produce(bootstrap, raw_topics.__getitem__, stream)
    accounts_in_stream = len({account for _, account, _ in stream})
    del stream
    try:
        say("scoring consumer …")
        plan = ReplicaPlan(
            url=url,
            bootstrap=bootstrap,
            topics=list(scoring_topics.values()),
            changed_topic=changed_topic,
            group=f"kizashi-bench-{run}-scoring",
        )
        scoring_s, scoring_batches = await run_scoring(plan, scoring_ends, args.replicas)
        say(f"scoring: {args.events / scoring_s:,.0f} events/s")
        scored = await _scored_accounts(url, prefix)
        if scored != accounts_in_stream:
            raise RuntimeError(f"{scored} of the stream's {accounts_in_stream} accounts scored")
        say("baseline (decode, claim the ids, one upsert of per-account aggregates per batch) …")
        baseline_s, baseline_batches = await run_baseline(
            settings,
            url,
            bootstrap,
            list(raw_topics.values()),
            raw_ends,
            f"bench_raw_{run}",
            f"kizashi-bench-{run}-raw",
        )
        say(f"baseline: {args.events / baseline_s:,.0f} events/s")
        say("decode floor (scoring's contract decode and one upsert per batch, one process) …")
        floor_s, _ = await run_baseline(
            settings,
            url,
            bootstrap,
            list(raw_topics.values()),
            raw_ends,
            f"bench_raw_{run}_decode",
            f"kizashi-bench-{run}-decode",
            decode=True,
        )
        say(f"decode floor: {args.events / floor_s:,.0f} events/s")
    finally:
        await _forget_accounts(url, prefix)
    events_per_s = args.events / scoring_s
    baseline_per_s = args.events / baseline_s
    floor_per_s = args.events / floor_s
    return {
        "benchmark": "scoring",
        "events": args.events,
        "accounts": args.accounts,
        "days": args.days,
        "accounts_scored": scored,
        "replicas": args.replicas,
        "max_batch": settings.scoring_max_batch,
        "scoring_batches": scoring_batches,
        "baseline_batches": baseline_batches,
        "scoring_s": round(scoring_s, 3),
        "baseline_s": round(baseline_s, 3),
        "events_per_s": round(events_per_s),
        "baseline_events_per_s": round(baseline_per_s),
        "ratio": round(events_per_s / baseline_per_s, 3),
        "decode_floor_s": round(floor_s, 3),
        "decode_floor_events_per_s": round(floor_per_s),
        "decode_floor_ratio": round(floor_per_s / baseline_per_s, 3),
    }


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    if args.events < 1 or args.accounts < 1 or args.replicas < 1:
        raise SystemExit("--events, --accounts and --replicas must be ≥ 1")
    if not 0 <= args.days <= 365:
        raise SystemExit("--days must be between 0 and 365")
    with servers(settings) as (url, bootstrap, embedded):
        result = asyncio.run(_bench(args, settings, url, bootstrap))
    result["embedded"] = embedded
    rows = [
        (f"scoring ×{result['replicas']}", result["scoring_s"], result["events_per_s"]),
        ("baseline", result["baseline_s"], result["baseline_events_per_s"]),
        ("decode floor", result["decode_floor_s"], result["decode_floor_events_per_s"]),
    ]
    spread = f"times over {result['days']} days" if result["days"] else "a live stream"
    print(f"{'':18} {'seconds':>9} {'events/s':>10}")
    for name, seconds, rate in rows:
        print(f"{name:18} {seconds:9.2f} {rate:10,}")
    print(
        f"ratio {result['ratio']:.2f} (goal ≥ 0.5); {result['events']:,} events, "
        f"{result['accounts']:,} accounts, "
        f"{spread}; batches of ≤ {result['max_batch']:,}: "
        f"{result['scoring_batches']} scoring, {result['baseline_batches']} baseline"
    )
    print(
        f"decode floor {result['decode_floor_ratio']:.2f}× the baseline: scoring's contract "
        "decode and one count upsert per batch, one process, no dedup, no model"
    )
    if args.json:
        print(orjson.dumps(result).decode())
    return 0
