"""Where an alert's time goes, from its trace (architecture §9.1): the timestamps of each hop,
read from the spans the four services export by OTLP to the bench's receiver.

The bench sends each alert's request with a sampled W3C `traceparent` of its own, and the
stack samples nothing else (`OTEL_TRACES_SAMPLER=parentbased_always_off`), so each alert is
one trace and the rest of the load costs only unsampled, non-recording spans. From that trace:

| timestamp | span |
|---|---|
| ingest's 202 | the end of ingest's `POST /v1/events` (the response sent) |
| scoring's commit | the end of `scoring publish` for the alert's account |
| `scores.changed` read by triggers | the start of its child `triggers signal` |
| the signal committed | the end of `triggers signal` |
| the notifier's read | the start of its child `notifier route` |
| the delivery row committed | the end of `notifier route` |
| the message sent | the end of the first successful `notifier send` under it |

Each service publishes before it commits (the broker's acknowledgement is part of the
transaction), so the next service may read a message a little before the commit that
published it: "scoring commit → triggers read" and "signal committed → notifier read" can be
slightly negative.
"""

from collections.abc import Iterable

from kizashi.tools.bench.harness import percentile
from kizashi.tools.otlp import ReceivedSpan

STAMPS = (
    "ingest 202",
    "scoring commit",
    "triggers read",
    "signal committed",
    "notifier read",
    "row committed",
    "message sent",
)
HOPS = tuple(zip(STAMPS, STAMPS[1:], strict=False))
TOTAL = ("ingest 202", "message sent")


def hop_name(hop: tuple[str, str]) -> str:
    return f"{hop[0]} → {hop[1]}"


def _first(spans: Iterable[ReceivedSpan], name: str, parent: str | None = None, **attributes):
    found = [
        s
        for s in spans
        if s.name == name
        and (parent is None or s.parent_span_id == parent)
        and all(s.attributes.get(f"kizashi.{k}") == v for k, v in attributes.items())
    ]
    return min(found, key=lambda s: s.end_ns) if found else None


def alert_stamps(spans: list[ReceivedSpan], account: str) -> dict[str, int] | None:
    """The alert's timestamps (ns since the epoch), or None while its trace is incomplete."""
    scoring = _first(spans, "scoring publish", account_id=account)
    ingest = scoring and next((s for s in spans if s.span_id == scoring.parent_span_id), None)
    if ingest is None or scoring is None:
        return None
    signal = _first(spans, "triggers signal", parent=scoring.span_id)
    route = signal and _first(spans, "notifier route", parent=signal.span_id)
    send = route and _first(spans, "notifier send", parent=route.span_id, outcome="ok")
    if not (signal and route and send):
        return None
    return {
        "ingest 202": ingest.end_ns,
        "scoring commit": scoring.end_ns,
        "triggers read": signal.start_ns,
        "signal committed": signal.end_ns,
        "notifier read": route.start_ns,
        "row committed": route.end_ns,
        "message sent": send.end_ns,
    }


def hop_times(
    traces: dict[str, list[ReceivedSpan]], alert_traces: dict[str, str], accounts: Iterable[str]
) -> dict[str, list[float]]:
    """Hop name → the seconds it took, one value per alert of `accounts` whose trace is whole."""
    times: dict[str, list[float]] = {hop_name(h): [] for h in (*HOPS, TOTAL)}
    for account in accounts:
        trace_id = alert_traces.get(account)
        stamps = trace_id and alert_stamps(traces.get(trace_id, []), account)
        if not stamps:
            continue
        for hop in (*HOPS, TOTAL):
            times[hop_name(hop)].append((stamps[hop[1]] - stamps[hop[0]]) / 1e9)
    return times


def hops_table(hops: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict]]:
    """Prints p50/p99 per hop and phase; returns them in ms for the JSON."""
    out: dict[str, dict[str, dict]] = {}
    names = [hop_name(h) for h in (*HOPS, TOTAL)]
    counts = {phase: len(times[names[-1]]) for phase, times in hops.items()}
    print()
    print(
        "where the time goes (ms, from each alert's trace; alerts traced: "
        + ", ".join(f"{phase} {n}" for phase, n in counts.items())
        + ")"
    )
    print(f"{'hop':<40}" + "".join(f"{p + ' p50':>14}{p + ' p99':>14}" for p in hops))
    for name in names:
        cells = ""
        for phase, times in hops.items():
            p50, p99 = percentile(times[name], 50), percentile(times[name], 99)
            cells += "".join(f"{'-' if v is None else f'{v * 1000:.0f}':>14}" for v in (p50, p99))
            out.setdefault(phase, {})[name] = {
                "p50": _round_ms(None if p50 is None else p50 * 1000),
                "p99": _round_ms(None if p99 is None else p99 * 1000),
            }
        print(f"{name:<40}{cells}")
    return out


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
