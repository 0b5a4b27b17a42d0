"""A tiny OTLP/HTTP trace receiver: what `kizashi bench e2e` points the stack's
KIZASHI_OTLP_ENDPOINT at to time each hop of an alert's path (and what the tracing test uses).

It takes `POST /v1/traces` with a protobuf `ExportTraceServiceRequest` (gzip or not), keeps
every span with its service name, and answers an empty `ExportTraceServiceResponse`.
"""

import asyncio
import gzip
from collections import defaultdict
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from kizashi.tools.tinyhttp import ConnectionServer, read_request


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # hex
    span_id: str
    parent_span_id: str  # "" for a root
    start_ns: int
    end_ns: int
    attributes: dict[str, object] = field(default_factory=dict)
    links: tuple[str, ...] = ()  # the trace ids linked to


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=tuple(link.trace_id.hex() for link in span.links),
                    )
                )
    return spans


class OtlpReceiver(ConnectionServer):
    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.bad_requests = 0
        self.arrived = asyncio.Event()

    @property
    def endpoint(self) -> str:
        """The base URL (KIZASHI_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT)."""
        return f"http://{self.host}:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await read_request(reader):
            body = request.body
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                if request.method != "POST" or request.target != "/v1/traces":
                    raise ValueError(f"{request.method} {request.target}")
                spans = decode(body)
            except Exception:  # a bad export is counted (a test can assert none came)
                self.bad_requests += 1
                writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                continue
            self.requests += 1
            self.spans.extend(spans)
            self.arrived.set()
            answer = ExportTraceServiceResponse().SerializeToString()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n"
                + f"content-length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        """Trace id → its spans, by start time."""
        by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
        for span in self.spans:
            by_trace[span.trace_id].append(span)
        return {t: sorted(spans, key=lambda s: s.start_ns) for t, spans in by_trace.items()}
