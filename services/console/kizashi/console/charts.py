"""The console's charts as server-rendered SVG: pure functions from data to markup, no I/O, no
JavaScript, nothing from a CDN. Every piece of text that comes from users (account names and
ids, signal headlines) is escaped with `html.escape(..., quote=True)`.

- `map_svg`: every scored account a point, CS on x and OP on y (0–100), the segment cut-offs
  as labelled quadrant lines, colour = priority, size = ARR, optional trails from where each
  account stood N days ago.
- `history_svg`: one account's CS and OP over time, the cut-offs as bands, signals marked.

**Many accounts on the map.** At most `max_points` accounts (default 2,000) are drawn as
points: the most important ones, by priority (high, medium, low, unknown) and then by ARR
(largest first; account id breaks ties, so the choice is stable). Every other scored account
is counted into a `grid` × `grid` lattice of density cells over CS × OP (default 20 × 20, cells
of 5 × 5 points), drawn under the points as grey squares whose opacity grows with the
logarithm of the count, each with a `<title>` ("312 more accounts: CS 40–45, OP 55–60") and a
`data-count` attribute. The markup thus stays bounded (≤ max_points points + grid² cells)
whatever the number of accounts, and rendering is one pass to bin and one partial sort to
choose (`heapq.nsmallest`): 100,000 accounts render in well under 300 ms. Trails are drawn for
the accounts drawn as points only.
"""

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple
from urllib.parse import quote

# insufficient_data: scores on too little evidence (scoring.yaml's min_confidence); the map
# draws those accounts apart, as rings.
INSUFFICIENT = "insufficient_data"
SEGMENTS = ("expand", "recover", "nurture", "at_risk", INSUFFICIENT)
PRIORITY_COLOURS = {"high": "#c0392b", "medium": "#e08a00", "low": "#2e6da4"}
UNKNOWN_COLOUR = "#8a8a8a"
_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
CS_COLOUR, OP_COLOUR = "#2e6da4", "#d35400"
SIGNAL_COLOURS = {"opportunity": "#1e8449", "churn_risk": "#c0392b"}


class Cutoffs(NamedTuple):
    """The segment cut-offs of scoring.yaml (`segments.cs_high`, `segments.op_high`)."""

    cs_high: float
    op_high: float


@dataclass(frozen=True, slots=True)
class MapPoint:
    account_id: str
    name: str | None
    cs: float | None
    op: float | None
    priority: str | None = None
    arr: float | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    at: datetime
    headline: str
    kind: str = "opportunity"


def _esc(value: object) -> str:
    return escape(str(value), quote=True)


def _field(item: Any, name: str) -> Any:
    """A field of a dataclass, a row or a dict alike."""
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def point_radius(
    arr: float | None, *, r_min: float = 3.0, r_max: float = 14.0, arr_full: float = 1_000_000.0
) -> float:
    """Area follows ARR: the radius grows with its square root, from `r_min` (ARR 0 or
    unknown) to `r_max` (ARR ≥ `arr_full`)."""
    if arr is None or arr <= 0:
        return r_min
    return r_min + (r_max - r_min) * math.sqrt(min(arr, arr_full) / arr_full)


_MAP_FIELDS = ("account_id", "name", "cs", "op", "priority", "arr")
# A row of the map: (priority rank, -ARR, account id, name, cs, op, priority, arr). Sorting rows
# sorts by importance (account ids are unique, so the rest is never compared).
_Row = tuple[int, float, str, str | None, float, float, str | None, float | None]


def importance(point: Mapping[str, Any]) -> tuple[int, float, str]:
    """The map's order of a point given as a mapping: priority (high first, unknown last),
    then ARR (largest first), then account id; as `_rows` sorts."""
    return (_PRIORITY_RANK.get(point["priority"], 3), -(point["arr"] or 0.0), point["account_id"])


def _rows(points: Iterable[Any]) -> list[_Row]:
    """The scored accounts as plain tuples: one pass, one getter per item type."""
    getters: dict[type, Any] = {}
    rows: list[_Row] = []
    for point in points:
        getter = getters.get(type(point))
        if getter is None:
            pick = itemgetter if isinstance(point, Mapping) else attrgetter
            getter = getters[type(point)] = pick(*_MAP_FIELDS)
        account_id, name, cs, op, priority, arr = getter(point)
        if cs is None or op is None:
            continue
        rank = _PRIORITY_RANK.get(priority, 3)
        rows.append((rank, -(arr or 0.0), account_id, name, cs, op, priority, arr))
    return rows


def map_svg(
    points: Iterable[Any],
    cutoffs: Cutoffs,
    trails: Mapping[str, tuple[float, float]] | None = None,
    *,
    width: int = 720,
    height: int = 720,
    max_points: int = 2_000,
    grid: int = 20,
    href_prefix: str = "/accounts/",
    density: Mapping[tuple[int, int], int] | None = None,
    apart: Iterable[str] = (),
) -> str:
    """The map as an SVG document. `points`: MapPoint-like items (attributes or keys
    account_id, name, cs, op, priority, arr); those without CS or OP are left out. `trails`:
    account id → (CS, OP) N days ago; each account drawn gets a line from there to now.

    `density`, when the caller chose the points already (the console does it in SQL: the
    `max_points` most important, and the others counted per cell): (i, j) → how many other
    accounts fall in cell i (CS) × j (OP) of the `grid` × `grid` lattice; every point given
    is then drawn. `apart`: the accounts whose scores stand on too little evidence
    (insufficient_data), drawn as rings rather than dots."""
    cs_high, op_high = cutoffs
    apart = set(apart)
    left, top, right, bottom = 48, 16, width - 16, height - 40
    span_x, span_y = right - left, bottom - top

    def x(cs: float) -> float:
        return left + span_x * _clamp(cs, 0.0, 100.0) / 100.0

    def y(op: float) -> float:
        return bottom - span_y * _clamp(op, 0.0, 100.0) / 100.0

    scored = _rows(points)
    if density is not None:
        drawn, counts = sorted(scored), {cell: n for cell, n in density.items() if n > 0}
    elif len(scored) > max_points:
        drawn = heapq.nsmallest(max_points, scored)
        last = drawn[-1]
        counts = _bin([row for row in scored if row > last], grid)
    else:
        drawn, counts = sorted(scored), {}
    others = sum(counts.values())
    total = len(drawn) + others
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="kz-map" role="img" '
        f'aria-label="Accounts by CS and OP: {total} accounts">',
        f'<rect class="plot" x="{left}" y="{top}" width="{span_x}" height="{span_y}" '
        'fill="#fafafa" stroke="#cccccc"/>',
    ]
    out += _axes(x, y, left, top, right, bottom)
    if counts:
        out += _density(counts, grid, x, y)
    out += _quadrants(cs_high, op_high, x, y, left, top, right, bottom)
    if trails:
        out.append('<g class="trails" stroke="#999999" stroke-width="1" fill="none">')
        for _, _, account_id, _, cs, op, _, _ in drawn:
            then = trails.get(account_id)
            if then is None:
                continue
            out.append(
                f'<line class="trail" x1="{x(then[0]):.1f}" y1="{y(then[1]):.1f}" '
                f'x2="{x(cs):.1f}" y2="{y(op):.1f}"/>'
            )
        out.append("</g>")
    out.append('<g class="points" fill-opacity="0.8" stroke="#ffffff" stroke-width="0.5">')
    # The most important last, so they are drawn on top.
    for _, _, account_id, name, cs, op, priority, arr in reversed(drawn):
        colour = PRIORITY_COLOURS.get(priority, UNKNOWN_COLOUR)
        label = f"{name or account_id} — CS {cs:.0f}, OP {op:.0f}"
        radius = point_radius(arr)
        if account_id in apart:
            paint = f'fill="none" stroke="{colour}" stroke-width="2" data-segment="{INSUFFICIENT}"'
            label += " (insufficient data)"
        else:
            paint = f'fill="{colour}"'
        out.append(
            f'<a href="{_esc(href_prefix + quote(account_id, safe=""))}">'
            f'<circle cx="{x(cs):.1f}" cy="{y(op):.1f}" r="{radius:.1f}" '
            f'{paint} data-priority="{_esc(priority or "unknown")}">'
            f"<title>{_esc(label)}</title></circle></a>"
        )
    out.append("</g>")
    if counts:
        out.append(
            f'<text class="caption" x="{left}" y="{height - 6}" font-size="11" fill="#555555">'
            f"{len(drawn):,} of {total:,} accounts drawn (the most important by priority "
            f"and ARR); the other {others:,} as density cells</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _axes(x, y, left: float, top: float, right: float, bottom: float) -> list[str]:
    out = ['<g class="axes" font-size="11" fill="#555555">']
    for tick in (0, 25, 50, 75, 100):
        out.append(f'<text x="{x(tick):.1f}" y="{bottom + 14}" text-anchor="middle">{tick}</text>')
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    out.append(
        f'<text class="axis-label" x="{(left + right) / 2:.1f}" y="{bottom + 30}" '
        'text-anchor="middle">CS (is the customer satisfied?)</text>'
    )
    out.append(
        f'<text class="axis-label" x="12" y="{(top + bottom) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + bottom) / 2:.1f})">OP (room to sell more?)</text>'
    )
    out.append("</g>")
    return out


def _quadrants(cs_high, op_high, x, y, left, top, right, bottom) -> list[str]:
    """The cut-off lines and the four segments' labels, each in its own quadrant's corner."""
    cx, cy = x(cs_high), y(op_high)
    out = [
        '<g class="quadrants" stroke="#777777" stroke-dasharray="4 3">',
        f'<line class="cutoff-cs" x1="{cx:.1f}" y1="{top}" x2="{cx:.1f}" y2="{bottom}"/>',
        f'<line class="cutoff-op" x1="{left}" y1="{cy:.1f}" x2="{right}" y2="{cy:.1f}"/>',
        "</g>",
        '<g class="segment-labels" font-size="12" font-weight="bold" fill="#444444">',
    ]
    corners = {
        "expand": (right - 6, top + 16, "end"),
        "recover": (left + 6, top + 16, "start"),
        "nurture": (right - 6, bottom - 8, "end"),
        "at_risk": (left + 6, bottom - 8, "start"),
    }
    for segment, (tx, ty, anchor) in corners.items():
        out.append(
            f'<text class="segment-label" data-segment="{segment}" x="{tx:.1f}" y="{ty:.1f}" '
            f'text-anchor="{anchor}">{segment.replace("_", " ")}</text>'
        )
    out.append(
        f'<text class="cutoff-label" x="{cx + 4:.1f}" y="{bottom - 24}" font-weight="normal" '
        f'font-size="10">CS {cs_high:g}</text>'
    )
    out.append(
        f'<text class="cutoff-label" x="{left + 4}" y="{cy - 4:.1f}" font-weight="normal" '
        f'font-size="10">OP {op_high:g}</text>'
    )
    out.append("</g>")
    return out


def density_cell(cs: float, op: float, grid: int = 20) -> tuple[int, int]:
    """The (i, j) cell of a `grid` × `grid` lattice over CS × OP 0–100 that holds a point
    (100 falls in the last cell). The console's SQL computes the same cells."""
    scale, top = grid / 100.0, grid - 1
    i, j = int(cs * scale), int(op * scale)
    return (top if i > top else 0 if i < 0 else i, top if j > top else 0 if j < 0 else j)


def _bin(rest: Sequence[_Row], grid: int) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for row in rest:
        cell = density_cell(row[4], row[5], grid)
        counts[cell] = counts.get(cell, 0) + 1
    return counts


def _density(counts: Mapping[tuple[int, int], int], grid: int, x, y) -> list[str]:
    top_count = max(counts.values())
    size = 100.0 / grid
    out = ['<g class="density" fill="#555555">']
    for (i, j), count in sorted(counts.items()):
        opacity = 0.08 + 0.5 * math.log1p(count) / math.log1p(top_count)
        cs0, op0 = i * size, j * size
        x0, y1 = x(cs0), y(op0 + size)
        out.append(
            f'<rect class="cell" x="{x0:.1f}" y="{y1:.1f}" width="{x(cs0 + size) - x0:.1f}" '
            f'height="{y(op0) - y1:.1f}" fill-opacity="{opacity:.2f}" data-count="{count}">'
            f"<title>{count:,} more accounts: CS {cs0:g}–{cs0 + size:g}, "
            f"OP {op0:g}–{op0 + size:g}</title></rect>"
        )
    out.append("</g>")
    return out


def _timestamp(value: datetime | str) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def history_svg(
    points: Sequence[Any],
    cutoffs: Cutoffs,
    signals: Iterable[Any] = (),
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    width: int = 720,
    height: int = 260,
    max_markers: int = 400,
) -> str:
    """One account's CS and OP over time as an SVG document. `points`: items with at, cs, op
    (and segment, priority), oldest first, as the history API returns them; `signals`: items
    with at, headline and kind. The time axis runs from `since` to `until` (default: the
    first and last point or signal). Each point gets a marker with a `<title>` while there
    are at most `max_markers` of them."""
    cs_high, op_high = cutoffs
    left, top, right, bottom = 40, 12, width - 12, height - 28
    span_x, span_y = right - left, bottom - top
    signals = list(signals)
    times = [_timestamp(_field(p, "at")) for p in points]
    signal_times = [_timestamp(_field(s, "at")) for s in signals]
    everything = times + signal_times
    start = _timestamp(since) if since else (min(everything) if everything else 0.0)
    end = _timestamp(until) if until else (max(everything) if everything else 1.0)
    if end <= start:
        end = start + 86_400.0

    def x(t: float) -> float:
        return left + span_x * _clamp((t - start) / (end - start), 0.0, 1.0)

    def y(value: float) -> float:
        return bottom - span_y * _clamp(value, 0.0, 100.0) / 100.0

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="kz-history" role="img" '
        f'aria-label="CS and OP over time: {len(points)} points, {len(signals)} signals">',
        f'<rect class="plot" x="{left}" y="{top}" width="{span_x}" height="{span_y}" '
        'fill="#fafafa" stroke="#cccccc"/>',
        # The cut-offs as bands: above each, that index counts as high.
        f'<rect class="band band-cs" x="{left}" y="{top}" width="{span_x}" '
        f'height="{y(cs_high) - top:.1f}" fill="{CS_COLOUR}" fill-opacity="0.06"/>',
        f'<rect class="band band-op" x="{left}" y="{top}" width="{span_x}" '
        f'height="{y(op_high) - top:.1f}" fill="{OP_COLOUR}" fill-opacity="0.06"/>',
        f'<line class="cutoff-cs" x1="{left}" y1="{y(cs_high):.1f}" x2="{right}" '
        f'y2="{y(cs_high):.1f}" stroke="{CS_COLOUR}" stroke-dasharray="4 3" stroke-width="0.8"/>',
        f'<line class="cutoff-op" x1="{left}" y1="{y(op_high):.1f}" x2="{right}" '
        f'y2="{y(op_high):.1f}" stroke="{OP_COLOUR}" stroke-dasharray="4 3" stroke-width="0.8"/>',
        '<g class="axes" font-size="10" fill="#555555">',
        f'<text x="{right - 4}" y="{y(cs_high) - 3:.1f}" text-anchor="end">CS cut-off '
        f"{cs_high:g}</text>",
        f'<text x="{right - 4}" y="{y(op_high) - 3:.1f}" text-anchor="end">OP cut-off '
        f"{op_high:g}</text>",
    ]
    for tick in (0, 50, 100):
        out.append(f'<text x="{left - 5}" y="{y(tick) + 3:.1f}" text-anchor="end">{tick}</text>')
    for k in range(5):
        t = start + (end - start) * k / 4
        day = datetime.fromtimestamp(t, UTC).date().isoformat()
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        out.append(f'<text x="{x(t):.1f}" y="{bottom + 16}" text-anchor="{anchor}">{day}</text>')
    out.append("</g>")
    if not points:
        out.append(
            f'<text class="empty" x="{(left + right) / 2:.1f}" y="{(top + bottom) / 2:.1f}" '
            'text-anchor="middle" fill="#777777">No score history in this period</text>'
        )
    for index, colour in (("cs", CS_COLOUR), ("op", OP_COLOUR)):
        if not points:
            break
        coords = " ".join(
            f"{x(t):.1f},{y(_field(p, index)):.1f}" for t, p in zip(times, points, strict=True)
        )
        out.append(
            f'<polyline class="line-{index}" points="{coords}" fill="none" stroke="{colour}" '
            'stroke-width="1.8"/>'
        )
    if 0 < len(points) <= max_markers:
        out.append('<g class="markers">')
        for t, p in zip(times, points, strict=True):
            when = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")
            extra = " · ".join(_esc(_field(p, k)) for k in ("segment", "priority") if _has(p, k))
            label = f"{when} · CS {_field(p, 'cs'):.1f} · OP {_field(p, 'op'):.1f}"
            title = f"<title>{_esc(label)}{' · ' + extra if extra else ''}</title>"
            for index, colour in (("cs", CS_COLOUR), ("op", OP_COLOUR)):
                out.append(
                    f'<circle class="point-{index}" cx="{x(t):.1f}" cy="{y(_field(p, index)):.1f}" '
                    f'r="2.2" fill="{colour}">{title}</circle>'
                )
        out.append("</g>")
    out.append('<g class="signals">')
    for t, signal in zip(signal_times, signals, strict=True):
        kind = _field(signal, "kind") if _has(signal, "kind") else "opportunity"
        colour = SIGNAL_COLOURS.get(kind, UNKNOWN_COLOUR)
        out.append(
            f'<g class="signal" data-kind="{_esc(kind)}">'
            f"<title>{_esc(_field(signal, 'headline'))}</title>"
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{bottom}" stroke="{colour}" '
            'stroke-width="1" stroke-opacity="0.6"/>'
            f'<path d="M{x(t) - 5:.1f},{top} L{x(t) + 5:.1f},{top} L{x(t):.1f},{top + 8}Z" '
            f'fill="{colour}"/></g>'
        )
    out.append("</g></svg>")
    return "".join(out)


def _has(item: Any, name: str) -> bool:
    return name in item if isinstance(item, Mapping) else hasattr(item, name)
