"""`kizashi bench ingest [--json]`: events/s through HTTP to Kafka-acknowledged, next to a raw
baseline measured in the same run: a plain aiokafka producer sending the same payloads to the
same broker.

Unless told where they are, it starts its own embedded broker, PostgreSQL (ingest keeps its
user links there) and `--replicas` ingest servers, each its own process on its own port as
replicas behind a load balancer would be; the clients' connections are spread evenly across
them. (One port shared by several uvicorn workers lets the kernel hand every connection to the
same worker, which made the figure swing by half from run to run.) The load comes from a lean
client in this process: pre-built HTTP/1.1 requests on keep-alive connections, so the client
spends little of the machine's CPU. Only 202 answers count.
"""

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from kizashi.contracts.topics import EVENT_TOPICS
from kizashi.tools.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from kizashi.tools.settings import ToolSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="events to send (each run)")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP connections")
    parser.add_argument(
        "--replicas", type=int, default=2, help="ingest server processes, one port each"
    )
    parser.add_argument("--accounts", type=int, default=1000, help="distinct account ids")


def _events(total: int, accounts: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "type": "product_usage",
            "account_id": f"bench-{i % accounts}",
            "event_id": uuid.uuid4().hex,
            "user_id": f"user-{i % 5000}",
            "occurred_at": now,
            "action": "feature_used",
            "feature": ("reports", "alerts", "exports", "search")[i % 4],
            "properties": {"plan": "growth", "browser": "firefox"},
        }
        for i in range(total)
    ]


def _requests(events: list[dict], batch: int, key: str) -> list[bytes]:
    out = []
    for start in range(0, len(events), batch):
        body = orjson.dumps({"events": events[start : start + batch]})
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def _connection(port: int, queue: list[bytes], counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            request = queue.pop()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            status = status_line.split(b" ", 2)[1].decode()
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


async def measure_http(ports: list[int], requests: list[bytes], clients: int) -> tuple[float, dict]:
    queue = list(reversed(requests))
    counts: dict[str, int] = {}
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(ports[i % len(ports)], queue, counts) for i in range(clients))
    )
    return time.perf_counter() - started, counts


async def measure_baseline(bootstrap: str, events: list[dict], batch: int) -> float:
    """A plain producer (acks=all, like ingest): each batch sent and awaited, ten in flight."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    payloads = [
        (EVENT_TOPICS[e["type"]], e["account_id"].encode(), orjson.dumps(e)) for e in events
    ]
    try:
        started = time.perf_counter()
        in_flight: list[asyncio.Future] = []
        for start in range(0, len(payloads), batch):
            for topic, key, value in payloads[start : start + batch]:
                in_flight.append(await producer.send(topic, value, key=key))
            if len(in_flight) >= 10 * batch:
                await asyncio.gather(*in_flight)
                in_flight.clear()
        await asyncio.gather(*in_flight)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def _start_ingest(bootstrap: str, db_url: str, key: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "KIZASHI_DATABASE_URL": db_url,
        "KIZASHI_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KIZASHI_INGEST_KEYS": f"bench:{key}",
        "KIZASHI_LOG_LEVEL": "WARNING",
        "KIZASHI_HOST": "127.0.0.1",
        "KIZASHI_INGEST_PORT": str(port),
    }
    # As deployed: `kizashi serve` (its protocol with header limits and timeouts).
    process = subprocess.Popen(
        [sys.executable, "-m", "kizashi.tools.cli", "serve", "ingest"], env=env
    )
    return process, port


def _wait_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("an ingest server did not become ready")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    from kizashi.tools.migrate import upgrade

    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="kizashi-bench-") as tmp:
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            broker = EmbeddedBroker(Path(tmp) / "broker", free_port())
            broker.start()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap_servers
        db_url = settings.database_url
        if not db_url:
            postgres = EmbeddedPostgres(Path(tmp) / "pg", free_port(), fsync=False)
            postgres.start()
            stack.callback(postgres.stop)
            db_url = postgres.url
        upgrade(db_url)
        key = secrets.token_urlsafe(16)
        servers = [_start_ingest(bootstrap, db_url, key) for _ in range(args.replicas)]
        for process, _ in servers:
            stack.callback(_stop, process)
        for process, port in servers:
            _wait_ready(process, port)
        ports = [port for _, port in servers]

        say(f"preparing {args.events} events …")
        warmup = _requests(_events(20 * args.batch, args.accounts), args.batch, key)
        events = _events(args.events, args.accounts)
        requests = _requests(events, args.batch, key)
        asyncio.run(measure_http(ports, warmup, args.clients))
        say(f"HTTP: {len(requests)} requests of {args.batch} events, {args.clients} clients …")
        http_s, counts = asyncio.run(measure_http(ports, requests, args.clients))
        accepted = counts.get("202", 0) * args.batch
        say("baseline: plain aiokafka producer, same payloads, same broker …")
        baseline_s = asyncio.run(measure_baseline(bootstrap, events, args.batch))

    rate = accepted / http_s
    baseline = len(events) / baseline_s
    result = {
        "benchmark": "ingest",
        "events": len(events),
        "batch": args.batch,
        "clients": args.clients,
        "replicas": args.replicas,
        "statuses": counts,
        "events_per_s": round(rate),
        "baseline_events_per_s": round(baseline),
        "ratio": round(rate / baseline, 3),
        "cpus": os.cpu_count(),
    }
    say("")
    say(f"{'measure':<44}{'events/s':>12}")
    say(f"{'ingest: HTTP → validated → Kafka acks=all':<44}{rate:>12,.0f}")
    say(f"{'baseline: plain aiokafka producer':<44}{baseline:>12,.0f}")
    say(f"{'ratio':<44}{rate / baseline:>12.2f}")
    say(f"statuses: {counts}")
    if args.json:
        print(orjson.dumps(result).decode())
    return 0 if counts.get("202", 0) == len(requests) else 1
