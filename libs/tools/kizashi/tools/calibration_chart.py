"""The backtest's calibration chart (`kizashi backtest --outcomes … --chart FILE.svg`): the churn
rate per CS decile and the expansion rate per OP decile, side by side, as a small hand-written
SVG with no script and nothing loaded from elsewhere."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

PANEL_W, PANEL_H = 420, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 48, 16, 44, 56
COLOURS = {"churn": "#c0392b", "expansion": "#2471a3"}


def calibration_svg(scores: dict[str, Any], *, title: str) -> str:
    """Both panels of `score_figures`' result in one SVG document."""
    width, height = 2 * PANEL_W, PANEL_H + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    panels = (
        ("churn", "CS decile (lowest CS left)", "churned or contracted"),
        ("expansion", "OP decile (lowest OP left)", "expanded"),
    )
    for index, (key, axis, what) in enumerate(panels):
        figures = scores[key]
        auc = "n/a" if figures["auc"] is None else f"{figures['auc']:.2f}"
        heading = f"{what} in the window, by {axis.split(' ')[0]} (AUC {auc})"
        parts.append(_panel(index * PANEL_W, 30, figures["deciles"], heading, axis, key))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(x0: float, y0: float, groups: list[dict], heading: str, axis: str, key: str) -> str:
    plot_w = PANEL_W - MARGIN_L - MARGIN_R
    plot_h = PANEL_H - MARGIN_T - MARGIN_B
    left, top = x0 + MARGIN_L, y0 + MARGIN_T
    bottom = top + plot_h
    top_rate = max([0.0] + [g["rate"] for g in groups])
    scale_max = max(0.1, min(1.0, _nice(top_rate)))
    out = [
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 + 20}" text-anchor="middle">{escape(heading)}</text>'
    ]
    for step in range(5):
        share = scale_max * step / 4
        y = bottom - plot_h * step / 4
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#dddddd"/>'
        )
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    if not groups:
        out.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">'
            "no scored accounts</text>"
        )
    slot = plot_w / max(1, len(groups))
    for i, group in enumerate(groups):
        bar_h = plot_h * group["rate"] / scale_max
        x = left + i * slot + slot * 0.15
        label = f"{group['outcomes']}/{group['accounts']}"
        out.append(
            f'<rect x="{x:.1f}" y="{bottom - bar_h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{COLOURS[key]}">'
            f"<title>decile {group['decile']}: {group['low']:g}–{group['high']:g}, "
            f"{label} ({group['rate']:.0%})</title></rect>"
        )
        centre = left + i * slot + slot / 2
        out.append(
            f'<text x="{centre:.1f}" y="{bottom - bar_h - 4:.1f}" text-anchor="middle" '
            f'font-size="9">{label}</text>'
        )
        out.append(
            f'<text x="{centre:.1f}" y="{bottom + 14:.1f}" text-anchor="middle" '
            f'font-size="9">{group["low"]:.0f}–{group["high"]:.0f}</text>'
        )
    out.append(
        f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#333333"/>'
    )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{bottom + 34}" text-anchor="middle">'
        f"{escape(axis)}</text>"
    )
    return "\n".join(out)


def _nice(rate: float) -> float:
    """The next tenth at or above `rate`, so the bars fill the panel."""
    return -(-round(rate * 1000) // 100) / 10
