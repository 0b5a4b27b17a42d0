"""Tracing's switch and its propagation through Kafka headers and stored rows (architecture
§9.1). The whole path, four services exporting by OTLP, is tests/e2e/test_tracing.py."""

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from kizashi.runtime import tracing
from kizashi.tools.otlp import decode


@dataclass
class Record:  # what the consumer reads: aiokafka's ConsumerRecord has these fields
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def _context(trace_id: int, span_id: int, sampled: bool = True):
    span = NonRecordingSpan(
        SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(int(sampled)))
    )
    return trace.set_span_in_context(span)


def test_off_unless_an_endpoint_is_configured():
    assert not tracing.configured(None, {})
    assert tracing.configured("http://collector:4318", {})
    assert tracing.configured(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert tracing.configured(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/v1/traces"})
    assert tracing.configured(None, {"OTEL_TRACES_EXPORTER": "otlp"})
    # The standard switches off win over an endpoint.
    assert not tracing.configured("http://c:4318", {"OTEL_SDK_DISABLED": "true"})
    assert not tracing.configured(
        None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    )


def test_the_test_process_runs_with_tracing_off():
    # No SDK provider: the API's no-op tracer, and the hot paths skip all tracing work.
    assert not tracing.enabled()
    assert tracing.record_spans("scoring publish", []) is None
    stored = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert tracing.send_span("notifier send", [stored], 1) is None


def test_a_context_goes_into_kafka_headers_and_comes_back_out():
    context = _context(0x1234, 0x5678)
    injector = tracing.HeaderInjector()
    headers = injector.headers(context)
    assert dict(headers)["traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-01".encode()
    assert injector.headers(context) is headers  # injected once per context and send
    extracted = tracing.record_context(Record(b"acct", (("other", b"x"), *headers)))
    span_context = trace.get_current_span(extracted).get_span_context()
    assert (span_context.trace_id, span_context.span_id) == (0x1234, 0x5678)
    assert span_context.is_remote and span_context.trace_flags.sampled


def test_no_context_sends_no_headers_and_a_record_without_any_has_none():
    assert tracing.HeaderInjector().headers(tracing.NO_CONTEXT) == ()
    assert tracing.record_context(Record(b"acct", ())) is None
    assert tracing.record_context(Record(b"acct", (("other", b"x"),))) is None


def test_a_stored_traceparent_restores_the_same_context():
    value = tracing.traceparent(_context(0xABC, 0xDEF, sampled=False))
    assert value == f"00-{0xABC:032x}-{0xDEF:016x}-00"
    restored = trace.get_current_span(tracing.from_traceparent(value)).get_span_context()
    assert (restored.trace_id, restored.span_id, restored.trace_flags.sampled) == (
        0xABC,
        0xDEF,
        False,
    )
    assert tracing.from_traceparent(None) is None


def test_a_batch_key_takes_the_sampled_context_of_its_records():
    unsampled = dict(tracing.HeaderInjector().headers(_context(1, 1, sampled=False)))
    sampled = dict(tracing.HeaderInjector().headers(_context(2, 2)))
    records = [
        Record(b"a", tuple(unsampled.items())),
        Record(b"a", tuple(sampled.items())),
        Record(b"b", tuple(unsampled.items())),
        Record(b"c", ()),
    ]
    spans = tracing.RecordSpans("test", records)

    def trace_of(key):
        context = spans.parent_of_key(key)
        return None if context is None else trace.get_current_span(context).get_span_context()

    assert trace_of("a").trace_id == 2
    assert trace_of("b").trace_id == 1
    assert trace_of("c") is None
    assert spans.for_key("c") is tracing.NO_CONTEXT


def test_the_receiver_decodes_an_otlp_export():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={
                    "attributes": [
                        KeyValue(key="service.name", value=AnyValue(string_value="kizashi-x"))
                    ]
                },
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=bytes(range(16)),
                                span_id=bytes(range(8)),
                                name="x publish",
                                start_time_unix_nano=5,
                                end_time_unix_nano=9,
                                attributes=[KeyValue(key="kizashi.n", value=AnyValue(int_value=3))],
                            )
                        ]
                    )
                ],
            )
        ]
    )
    [span] = decode(request.SerializeToString())
    assert (span.service, span.name, span.start_ns, span.end_ns) == ("kizashi-x", "x publish", 5, 9)
    assert span.trace_id == bytes(range(16)).hex() and span.parent_span_id == ""
    assert span.attributes == {"kizashi.n": 3}
