"""`kizashi soak --minutes N [--rate R]`: moderate load for a long while, and whether memory,
lag and latency stay flat.

It starts a stack on the embedded default (or drives a running one, `--stack DIR`), sends
`--rate` events/s of product usage with an alerting survey every `--alert-every` events, and
every `--every` seconds prints one row: resident memory per service (and of the embedded
PostgreSQL and broker), the consumers' lag, the pipeline backlog, and the p50/p99 of the
alerts that arrived in the interval. At the end: the verdict, from a least-squares line
through each series over the second half of the run (the first half is warm-up: caches,
pools and the broker's in-memory log grow into their working size there).
"""

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass, field

import httpx
import orjson

from kizashi.tools.bench.harness import (
    AlertReceiver,
    LoadGenerator,
    LoadStats,
    StackHandle,
    Workload,
    add_stack_arguments,
    alert_latencies,
    attach_running_stack,
    machine_description,
    percentile,
    progress,
    start_embedded_stack,
)
from kizashi.tools.settings import ToolSettings

SERVICES = ("ingest", "scoring", "triggers", "notifier")
# The embedded servers are shown but not judged: Tansu on memory storage keeps the whole log in
# RAM by design (a real Kafka keeps it on disk), and PostgreSQL fills its buffers as it warms.
MEMORY_COLUMNS = (*SERVICES, "postgres", "broker")
# Growth over the second half that still counts as flat: MiB per hour of RSS, and events of
# backlog per minute (a backlog that grows at all, without bound, is a failure).
FLAT_RSS_MIB_PER_H = 20.0
FLAT_BACKLOG_PER_MIN = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10, help="how long to run")
    parser.add_argument("--rate", type=float, default=300, help="events/s (moderate by default)")
    parser.add_argument("--alert-every", type=int, default=300, help="one alert per N events")
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    add_stack_arguments(parser)


@dataclass
class Sample:
    minute: float
    events: int
    rss: dict[str, float]
    lag: float
    backlog: float
    alerts: int
    p50_ms: float | None
    p99_ms: float | None

    def row(self) -> str:
        memory = " ".join(f"{self.rss.get(name, 0):>8.0f}" for name in MEMORY_COLUMNS)
        p50 = "-" if self.p50_ms is None else f"{self.p50_ms:.0f}"
        p99 = "-" if self.p99_ms is None else f"{self.p99_ms:.0f}"
        return (
            f"{self.minute:>5.1f} {self.events:>9} {memory} {self.lag:>6.0f} "
            f"{self.backlog:>7.0f} {self.alerts:>6} {p50:>6} {p99:>6}"
        )


HEADER = (
    f"{'min':>5} {'events':>9} "
    + " ".join(f"{name[:8]:>8}" for name in MEMORY_COLUMNS)
    + f" {'lag':>6} {'backlog':>7} {'alerts':>6} {'p50ms':>6} {'p99ms':>6}"
)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (per unit of x); 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


@dataclass
class Verdict:
    rss_mib_per_h: dict[str, float] = field(default_factory=dict)
    backlog_per_min: float = 0.0
    p99_ms_per_min: float = 0.0

    @property
    def flat(self) -> bool:
        return (
            all(self.rss_mib_per_h.get(name, 0) < FLAT_RSS_MIB_PER_H for name in SERVICES)
            and self.backlog_per_min < FLAT_BACKLOG_PER_MIN
        )

    def lines(self) -> list[str]:
        growth = ", ".join(f"{k} {v:+.1f}" for k, v in self.rss_mib_per_h.items())
        return [
            f"RSS slope over the second half (MiB/h): {growth}",
            f"backlog slope: {self.backlog_per_min:+.1f} events/min; "
            f"alert p99 slope: {self.p99_ms_per_min:+.1f} ms/min",
            "verdict (the four services' RSS and the backlog): "
            + ("FLAT" if self.flat else "GROWING (see the slopes above)"),
            "(postgres and broker are shown, not judged: the embedded broker keeps its whole "
            "log in memory by design)",
        ]


def judge(samples: list[Sample]) -> Verdict:
    second_half = samples[len(samples) // 2 :]
    verdict = Verdict()
    for name in MEMORY_COLUMNS:
        points = [(s.minute, s.rss[name]) for s in second_half if name in s.rss]
        if points:
            verdict.rss_mib_per_h[name] = slope(points) * 60
    verdict.backlog_per_min = slope([(s.minute, s.backlog) for s in second_half])
    verdict.p99_ms_per_min = slope(
        [(s.minute, s.p99_ms) for s in second_half if s.p99_ms is not None]
    )
    return verdict


async def _soak(args: argparse.Namespace, settings: ToolSettings) -> tuple[list[Sample], Verdict]:
    receiver = AlertReceiver(args.receiver_port)
    await receiver.start()
    stack: StackHandle = (
        attach_running_stack(args.stack, settings)
        if args.stack
        else await start_embedded_stack(receiver)
    )
    workload = Workload(
        uuid.uuid4().hex[:8],
        accounts=args.accounts,
        alert_every=args.alert_every,
        owners=stack.owners,
    )
    stats = LoadStats()
    load = LoadGenerator(stack, workload, stats, requests_per_s=10)
    samples: list[Sample] = []
    print(f"kizashi soak — {args.minutes:g} min at {args.rate:g} events/s; {machine_description()}")
    print(
        "RSS in MiB (postgres: PSS over its processes); lag = consumer lag (records); "
        "backlog = accepted − applied (events)"
    )
    try:
        async with httpx.AsyncClient(timeout=5) as metrics:
            baseline = await progress(metrics, stack)
            await load.post(workload.first_facts(), [])
            started = time.monotonic()
            print(HEADER, flush=True)
            seen = 0
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                await load.run(args.rate, min(args.every, args.minutes * 60 - elapsed))
                done = await progress(metrics, stack)
                latencies = alert_latencies(receiver, stats.alert_accepted_at, since=seen)
                seen = len(receiver.arrivals)
                values = [v * 1000 for v in latencies.values()]
                sample = Sample(
                    minute=(time.monotonic() - started) / 60,
                    events=stats.accepted,
                    rss=stack.rss_mib(),
                    lag=done.total_lag,
                    backlog=stats.accepted - (done.applied - baseline.applied),
                    alerts=len(values),
                    p50_ms=percentile(values, 50),
                    p99_ms=percentile(values, 99),
                )
                samples.append(sample)
                print(sample.row(), flush=True)
            await load.settle()
    finally:
        await load.close()
        if stack.process is not None:
            stack.stop()
        await receiver.stop()
    return samples, judge(samples)


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    samples, verdict = asyncio.run(_soak(args, settings))
    for line in verdict.lines():
        print(line)
    if args.json:
        print(
            orjson.dumps(
                {
                    "flat": verdict.flat,
                    "rss_mib_per_h": {k: round(v, 1) for k, v in verdict.rss_mib_per_h.items()},
                    "backlog_per_min": round(verdict.backlog_per_min, 1),
                    "samples": len(samples),
                    "last_rss_mib": {k: round(v) for k, v in samples[-1].rss.items()}
                    if samples
                    else {},
                }
            ).decode()
        )
    return 0 if verdict.flat else 1
