"""OpenTelemetry traces across the pipeline (architecture §9.1).

Off unless an OTLP endpoint is configured: no SDK tracer provider is installed, the API's
tracer is its no-op, and every hot path asks `enabled()` (a module global) before it does any
tracing work at all. On (`setup`), each service exports its spans by OTLP/HTTP in the
background (the SDK's BatchSpanProcessor) under `service.name` `kizashi-<service>`.

The context travels the standard way, the W3C `traceparent` (and `baggage`) of the global
propagator: in HTTP request headers into ingest, in the Kafka record headers between the
services (injected by the shared producer, `kizashi.runtime.kafka`, extracted here for the
shared consumer), and in `deliveries.traceparent` from the notifier's consumer to its delivery
worker, which sends from a row claimed in the database.

Spans of one alert's path:

- `POST /v1/events` (ingest, SERVER, FastAPI's own span): the request, ended once the 202
  has been sent;
- `<service> process` (CONSUMER): one per consumed batch, linked to (up to
  `MAX_BATCH_LINKS`) sampled contexts of its records;
- per-record spans (`RecordSpans`) for the records that go on to the next stage: each the
  child of its own record's context, linked to the batch span, started when the batch was
  read and ended when the handler's transaction committed. Scoring opens one per
  `scores.changed` it publishes for an account whose events came with a context, triggers
  one per new signal, the notifier one per signal routed;
- `notifier send` (CLIENT): from the claim of the delivery row to the receiver's answer.
"""

import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

# The SDK keeps at most 128 links a span; a batch names the first sampled ones only.
MAX_BATCH_LINKS = 32
_enabled = False
_provider: Any = None
_tracer = trace.get_tracer("kizashi")
# Sends no trace headers (OutgoingRecord.context): the record starts no trace downstream.
NO_CONTEXT = Context()
# When the consumer was handed the current batch (ns since the epoch), and its span.
_batch_read_ns: ContextVar[int | None] = ContextVar("kizashi_batch_read_ns", default=None)
_batch_span: ContextVar[Span | None] = ContextVar("kizashi_batch_span", default=None)


def enabled() -> bool:
    return _enabled


def configured(otlp_endpoint: str | None, env: Mapping[str, str] = os.environ) -> bool:
    """On when an endpoint is named (KIZASHI_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp asks for the default
    one; off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, and by default."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        otlp_endpoint
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or exporter == "otlp"
    )


def setup(service: str, otlp_endpoint: str | None = None) -> bool:
    """Install the SDK's tracer provider with an OTLP/HTTP exporter when tracing is configured
    (see `configured`); once per process. Returns whether tracing is on."""
    global _enabled, _provider
    if _enabled:
        return True
    if not configured(otlp_endpoint):
        return False
    # Imported only when on: a service with tracing off never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": f"kizashi-{service}", "service.namespace": "kizashi"}
    )
    # The sampler is the SDK's: OTEL_TRACES_SAMPLER (default parentbased_always_on).
    provider = TracerProvider(resource=resource)
    exporter = (
        OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
        if otlp_endpoint
        else OTLPSpanExporter()  # the OTEL_EXPORTER_OTLP_* variables
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    _enabled = True
    log.info("tracing on: spans go by OTLP/HTTP as kizashi-%s", service)
    return True


def shutdown() -> None:
    """Export what is still buffered (at a service's stop)."""
    if _provider is not None:
        try:
            _provider.shutdown()
        except Exception:  # the collector may be gone; never fail a shutdown for it
            log.warning("could not flush the last spans", exc_info=True)


# --- propagation -----------------------------------------------------------------------------


class _KafkaHeaders(Getter[Sequence[tuple[str, bytes]]]):
    """aiokafka's record headers: a sequence of (name, bytes)."""

    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k == key and v is not None]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


_KAFKA = _KafkaHeaders()


def record_context(record: Any) -> Context | None:
    """The trace context a consumed record carries, or None."""
    headers = getattr(record, "headers", None)
    if not headers:
        return None
    if not any(k == "traceparent" for k, _ in headers):
        return None
    return propagate.extract(headers, getter=_KAFKA)


class HeaderInjector:
    """Trace headers for outgoing records, injected once per distinct context of one send."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[tuple[str, bytes], ...]] = {}
        self._current: tuple[tuple[str, bytes], ...] | None = None

    def headers(self, context: Context | None) -> tuple[tuple[str, bytes], ...]:
        if context is None:
            if self._current is None:
                self._current = _inject(None)
            return self._current
        found = self._cache.get(id(context))
        if found is None:
            found = self._cache[id(context)] = _inject(context)
        return found


def _inject(context: Context | None) -> tuple[tuple[str, bytes], ...]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return tuple((k, v.encode("latin-1")) for k, v in carrier.items())


def traceparent(context: Context | None) -> str | None:
    """The W3C traceparent of a context, to store with a row (None when it has no span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier.get("traceparent")


def from_traceparent(value: str | None) -> Context | None:
    return propagate.extract({"traceparent": value}) if value else None


def _sampled(context: Context | None) -> bool:
    return bool(context) and trace.get_current_span(context).get_span_context().trace_flags.sampled


# --- spans -----------------------------------------------------------------------------------


@contextmanager
def batch_span(
    service: str, topics: Iterable[str], records: Sequence[Any], read_ns: int
) -> Iterator[None]:
    """The consumer's span around one batch (only called when tracing is on), from `read_ns`,
    when its first records were handed over."""
    links: list[Link] = []
    seen: set[bytes] = set()
    for record in records:
        for key, value in record.headers or ():
            if key == "traceparent" and value not in seen:
                seen.add(value)
                context = record_context(record)
                if _sampled(context):
                    links.append(Link(trace.get_current_span(context).get_span_context()))
                break
        if len(links) >= MAX_BATCH_LINKS:
            break
    with _tracer.start_as_current_span(
        f"{service} process",
        kind=SpanKind.CONSUMER,
        links=links,
        start_time=read_ns,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": ",".join(sorted(set(topics))),
            "messaging.batch.message_count": len(records),
        },
    ) as span:
        read_token, span_token = _batch_read_ns.set(read_ns), _batch_span.set(span)
        try:
            yield
        finally:
            _batch_read_ns.reset(read_token)
            _batch_span.reset(span_token)


class RecordSpans:
    """The spans of one batch's records that go on to the next stage (see the module's doc).

    `start` opens one as the child of a record's context and returns the context to send on;
    `end` closes them all once the batch's transaction has committed (or failed)."""

    def __init__(self, name: str, records: Sequence[Any]) -> None:
        self.name = name
        self.records = records
        self.start_ns = _batch_read_ns.get() or time.time_ns()
        batch = _batch_span.get()
        self._links = [Link(batch.get_span_context())] if batch is not None else []
        self._spans: list[Span] = []
        self._by_key: dict[str, Context] | None = None

    def parent_of_key(self, key: str) -> Context | None:
        """The context of the batch's records with this Kafka key (an account id): a sampled
        one when there is one, else the first."""
        if self._by_key is None:
            self._by_key = {}
            by_value: dict[bytes, Context | None] = {}
            for record in self.records:
                value = next((v for k, v in record.headers or () if k == "traceparent"), None)
                if value is None or record.key is None:
                    continue
                if value not in by_value:
                    by_value[value] = record_context(record)
                context = by_value[value]
                if context is None:
                    continue
                account = record.key.decode("utf-8", "replace")
                if account not in self._by_key or (
                    _sampled(context) and not _sampled(self._by_key[account])
                ):
                    self._by_key[account] = context
        return self._by_key.get(key)

    def for_key(self, key: str, **attributes: Any) -> Context:
        """The context to send a record on: a span's under the context that came with the
        key's records, or NO_CONTEXT when none came (then no trace goes on)."""
        parent = self.parent_of_key(key)
        return NO_CONTEXT if parent is None else self.start(parent, **attributes)

    def start(self, parent: Context | None, **attributes: Any) -> Context:
        """A span under `parent` (a trace of its own when None), attributes named
        `kizashi.<name>`; returns the context to send on."""
        span = _tracer.start_span(
            self.name,
            context=parent or Context(),  # no context: a trace of its own
            kind=SpanKind.INTERNAL,
            links=self._links,
            start_time=self.start_ns,
            attributes={f"kizashi.{k}": v for k, v in attributes.items()},
        )
        self._spans.append(span)
        return trace.set_span_in_context(span)

    def end(self, error: BaseException | None = None) -> None:
        end_ns = time.time_ns()
        for span in self._spans:
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end(end_time=end_ns)
        self._spans.clear()


def record_spans(name: str, records: Sequence[Any]) -> RecordSpans | None:
    """A RecordSpans when tracing is on, else None (the caller skips all tracing work)."""
    return RecordSpans(name, records) if _enabled else None


@asynccontextmanager
async def closing(spans: RecordSpans | None) -> AsyncIterator[None]:
    """Ends `spans` after the block, marked failed when it raised. Named first in
    `async with tracing.closing(spans), raw_transaction(...)`, it exits after the commit."""
    try:
        yield
    except BaseException as error:
        if spans is not None:
            spans.end(error)
        raise
    if spans is not None:
        spans.end()


def send_span(
    name: str, traceparents: Sequence[str | None], start_ns: int, **attributes: Any
) -> Span | None:
    """A CLIENT span for a message sent from stored rows (the notifier's worker), in the trace
    of the first row's traceparent and linked to the others' (attributes named
    `kizashi.<name>`); None when tracing is off."""
    if not _enabled:
        return None
    contexts = [from_traceparent(t) for t in traceparents]
    return _tracer.start_span(
        name,
        context=contexts[0] or Context(),
        kind=SpanKind.CLIENT,
        start_time=start_ns or None,
        links=[Link(trace.get_current_span(c).get_span_context()) for c in contexts[1:] if c],
        attributes={f"kizashi.{k}": v for k, v in attributes.items()},
    )


def end_span(span: Span | None, error: str | None = None, **attributes: Any) -> None:
    """End a span of `send_span`, failed when `error` says why."""
    if span is None:
        return
    for key, value in attributes.items():
        span.set_attribute(f"kizashi.{key}", value)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error[:200]))
    span.end()


# --- HTTP ------------------------------------------------------------------------------------

UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

# FastAPI's own OpenTelemetry support (`FastAPI(telemetry=...)`) makes the SERVER span of each
# request once a tracer provider is installed, continuing the caller's `traceparent`, and ends
# it when the response has been sent (ingest's 202 is the end of its span). Only that span:
# no per-dependency spans, and no metrics or logs through OpenTelemetry (Prometheus and the
# JSON logs have those). With tracing off FastAPI finds no provider and adds nothing.
FASTAPI_TELEMETRY = {
    "tracing": True,
    "operation_spans": False,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
    "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS,
}
