"""`kizashi rescore`: recompute every account's scores from its stored state, e.g. after a
change to scoring.yaml, while the services keep running.

Accounts are walked in account-id order by keyset (no OFFSET), a batch per transaction, through
the sweep's `rescore_accounts` (cause "rescore"): each batch locks its rows in sorted order
like the consumer does, so the two wait for each other instead of overwriting each other, and
a deadlock is retried. A batch that moved a score meaningfully publishes `scores.changed`.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.runtime.kafka import Producer
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.phases import load_phase_config
from kizashi.scoring import repository
from kizashi.scoring.config import load_scoring_config
from kizashi.scoring.state import ScoringState
from kizashi.scoring.sweep import rescore_accounts
from kizashi.tools.settings import ToolSettings
from kizashi.tools.stack import read_stack

DEFAULT_BATCH = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="accounts per transaction (default 500)"
    )


@dataclass
class ProgressBar:
    """`rescore ███░░ 4,500/10,000 accounts 45% · 2,310/s · ETA 2 s` on stderr; on a
    terminal it redraws in place, elsewhere (logs, CI) it prints a line every 2 s."""

    total: int
    write: Callable[[str], object] = lambda text: sys.stderr.write(text)
    tty: bool = field(default_factory=lambda: sys.stderr.isatty())
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        share = self.done / self.total if self.total else 1.0
        filled = int(share * 20)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"rescore {'█' * filled}{'░' * (20 - filled)} {self.done:,}/{self.total:,} accounts "
            f"{share * 100:3.0f}% · {rate:,.0f}/s · ETA {left:,.0f} s"
        )

    def advance(self, count: int, *, final: bool = False) -> None:
        self.done += count
        now = time.monotonic()
        if self.tty:
            self.write("\r" + self.line() + ("\n" if final else ""))
        elif final or now - self._last >= 2.0:
            self.write(self.line() + "\n")
            self._last = now


async def next_account_ids(service: ScoringState, after: str, limit: int) -> list[str]:
    async with raw_transaction(service.engine) as connection:
        return await repository.account_ids_after(conn=connection, after=after, limit=limit)


async def count_accounts(service: ScoringState) -> int:
    async with raw_transaction(service.engine) as connection:
        return await repository.count_accounts(conn=connection)


async def rescore_all(
    service: ScoringState, *, batch: int, progress: ProgressBar | None = None
) -> int:
    """Re-score every account that exists now; returns how many were re-scored."""
    after, total = "", 0
    while True:
        ids = await next_account_ids(service, after, batch)
        if not ids:
            break
        total += await rescore_accounts(service, ids, cause="rescore", now=datetime.now(UTC))
        after = ids[-1]
        if progress is not None:
            # Accounts created while we run may push `done` past the count taken at the start.
            progress.total = max(progress.total, progress.done + len(ids))
            progress.advance(len(ids))
    return total


def _servers(settings: ToolSettings) -> tuple[str, str]:
    """The configured servers, or those of the embedded stack `kizashi up` runs."""
    stack = read_stack(settings.data_dir) or {}
    url = settings.database_url
    if not url and stack.get("embedded_database"):
        url = f"postgresql://postgres@127.0.0.1:{settings.embedded_postgres_port}/kizashi"
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap and stack.get("embedded_broker"):
        bootstrap = f"127.0.0.1:{settings.embedded_broker_port}"
    if not url or not bootstrap:
        raise SystemExit(
            "kizashi rescore: set KIZASHI_DATABASE_URL and KIZASHI_KAFKA_BOOTSTRAP_SERVERS, "
            "or run it next to a running `kizashi up` (same KIZASHI_DATA_DIR)"
        )
    return url, bootstrap


async def _run(settings: ToolSettings, batch: int) -> int:
    url, bootstrap = _servers(settings)
    config = load_scoring_config(settings.config_dir)
    runtime = ServiceRuntime(service="scoring", settings=settings, engine=create_engine(url))
    runtime.producer = Producer(
        bootstrap, service="scoring", send_timeout_s=settings.kafka_send_timeout_s
    )
    await runtime.producer.start()
    try:
        # The ladder in force too: a re-score recomputes every account's phase.
        service = ScoringState(
            runtime=runtime, config=config, phases=load_phase_config(settings.config_dir)
        )
        progress = ProgressBar(total=await count_accounts(service))
        print(f"re-scoring with scoring.yaml version {config.version!r}", file=sys.stderr)
        done = await rescore_all(service, batch=batch, progress=progress)
        progress.advance(0, final=True)
    finally:
        await runtime.stop()
    print(f"re-scored {done:,} accounts with scoring.yaml version {config.version!r}")
    return 0


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    if not 1 <= args.batch <= 10_000:
        raise SystemExit("kizashi rescore: --batch must be between 1 and 10000")
    return asyncio.run(_run(settings, args.batch))
