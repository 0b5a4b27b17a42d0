"""The pieces a service holds while it runs (engine, producer, consumers, periodic jobs), and
their orderly start and stop. Each service's `app.py` builds one in its lifespan."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.runtime import tracing
from kizashi.runtime.consumer import BatchConsumer, BatchHandler
from kizashi.runtime.db import create_engine, database_ready, record_pool_metrics
from kizashi.runtime.kafka import Producer, ensure_topics, flavour_of
from kizashi.runtime.metrics import PERIODIC_TASK_LAST_SUCCESS, PERIODIC_TASK_RUNS
from kizashi.runtime.settings import Settings

log = logging.getLogger(__name__)

# A consumer with records waiting and no progress for this long is reported as not ready.
STUCK_AFTER_S = 120.0


@dataclass
class ServiceRuntime:
    service: str
    settings: Settings
    engine: AsyncEngine | None = None
    producer: Producer | None = None
    consumers: list[BatchConsumer] = field(default_factory=list)
    # False for a service that talks to no broker (the console): readiness does not ask.
    uses_broker: bool = True
    kafka_flavour: str = "embedded"  # "kafka" or "embedded", as told at start
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    async def start(
        cls, service: str, settings: Settings, *, database: bool = True, broker: bool = True
    ) -> "ServiceRuntime":
        runtime = cls(service=service, settings=settings, uses_broker=broker)
        if database:
            runtime.engine = create_engine(
                settings.require_database_url(), pool_size=settings.db_pool_size
            )
        if not broker:
            runtime.every(15.0, runtime._pool_metrics, name="pool-metrics")
            return runtime
        bootstrap = settings.require_bootstrap_servers()
        await _until_broker_answers(bootstrap)
        await ensure_topics(bootstrap)
        runtime.kafka_flavour = await flavour_of(bootstrap, settings.kafka_flavour)
        log.info("broker %s is %s", bootstrap, runtime.kafka_flavour)
        runtime.producer = Producer(
            bootstrap,
            service=service,
            send_timeout_s=settings.kafka_send_timeout_s,
            idempotent=runtime.kafka_flavour == "kafka",
        )
        await runtime.producer.start()
        runtime.every(15.0, runtime._pool_metrics, name="pool-metrics")
        return runtime

    def consume(
        self, topics: list[str], handler: BatchHandler, *, max_batch: int | None = None
    ) -> None:
        """Run a BatchConsumer; `max_batch` overrides `consumer_max_batch` for this one."""
        self._tasks.append(
            asyncio.create_task(
                self._supervise(topics, handler, max_batch), name=f"consume-{topics}"
            )
        )

    def every(self, interval_s: float, job: Callable[[], Awaitable[object]], *, name: str) -> None:
        """Run a periodic job; a failure is logged and counted, and the job runs again next
        interval. Each run is counted, so a job that stopped (the silence sweep: no churn
        signal without it) shows on /metrics and fires KizashiPeriodicTaskStale."""
        runs = {o: PERIODIC_TASK_RUNS.labels(self.service, name, o) for o in ("ok", "failed")}
        last_success = PERIODIC_TASK_LAST_SUCCESS.labels(self.service, name)
        last_success.set_to_current_time()  # from the start, not from 1970: no alert at boot

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await job()
                except Exception:
                    runs["failed"].inc()
                    log.exception("periodic job %s failed", name)
                else:
                    runs["ok"].inc()
                    last_success.set_to_current_time()

        self._tasks.append(asyncio.create_task(loop(), name=name))

    def _new_consumer(
        self, topics: list[str], handler: BatchHandler, max_batch: int | None = None
    ) -> BatchConsumer:
        assert self.producer is not None
        return BatchConsumer(
            service=self.service,
            topics=topics,
            bootstrap_servers=self.settings.require_bootstrap_servers(),
            handler=handler,
            dead_letters=self.producer,
            max_batch=max_batch or self.settings.consumer_max_batch,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            broker_may_forget=self.kafka_flavour == "embedded",
        )

    def background(self, coroutine: Awaitable[object], *, name: str) -> None:
        """A long-running task of the service's own, cancelled when the service stops."""
        self._tasks.append(asyncio.create_task(coroutine, name=name))  # type: ignore[arg-type]

    async def _supervise(
        self, topics: list[str], handler: BatchHandler, max_batch: int | None = None
    ) -> None:
        """A consumer that crashes (broker gone, a coordinator error) starts again, fresh."""
        slot = len(self.consumers)
        self.consumers.append(self._new_consumer(topics, handler, max_batch))
        while True:
            try:
                await self.consumers[slot].run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer stopped unexpectedly; restarting in 2 s")
                await asyncio.sleep(2)
                self.consumers[slot] = self._new_consumer(topics, handler, max_batch)

    async def _pool_metrics(self) -> None:
        if self.engine is not None:
            record_pool_metrics(self.engine, self.service)

    def liveness(self) -> dict[str, bool]:
        return {
            f"consumer_{index}_progressing": not consumer.status.stuck(STUCK_AFTER_S)
            for index, consumer in enumerate(self.consumers)
        }

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        if self.engine is not None:
            checks["database"] = await database_ready(self.engine)
        if self.uses_broker:
            checks["broker"] = self.producer is not None and await self.producer.connected()
        if self.consumers:
            checks["consumers"] = all(
                c.status.started and not c.status.stuck(STUCK_AFTER_S) for c in self.consumers
            )
        return checks

    async def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.producer is not None:
            await self.producer.stop()
        if self.engine is not None:
            await self.engine.dispose()
        if tracing.enabled():
            await asyncio.to_thread(tracing.shutdown)  # export the spans still buffered


async def _until_broker_answers(bootstrap: str, timeout_s: float = 60.0) -> None:
    """Services may start before the broker (compose, k8s): wait for it instead of crashing."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await ensure_topics(bootstrap, topics=())
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("broker %s not reachable yet; waiting", bootstrap)
            await asyncio.sleep(1)


@dataclass
class ServiceState:
    """Base of each service's typed lifespan state (`app.state.service`)."""

    runtime: ServiceRuntime

    @property
    def engine(self) -> AsyncEngine:
        assert self.runtime.engine is not None, "this service runs without a database"
        return self.runtime.engine

    @property
    def producer(self) -> Producer:
        assert self.runtime.producer is not None
        return self.runtime.producer

    def readiness(self) -> dict[str, bool]:
        """The service's own checks for /readyz, beside the runtime's (ingest: its intake)."""
        return {}
