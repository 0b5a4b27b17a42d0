"""A rep's phase funnel as server-rendered SVG (the KPI page): one centred bar per phase,
its width the share of the rep's accounts in that phase, with the phase's name and count.
Every text drawn is escaped; no JavaScript."""

from collections.abc import Sequence
from html import escape

WIDTH, BAR_H, GAP, LABEL_W = 420, 22, 4, 150
COLOURS = ("#b8c7d9", "#8fb0d3", "#5f93c7", "#2e6da4", "#1e8449")


def funnel_svg(counts: Sequence[int], names: Sequence[str]) -> str:
    """`counts[p]`: accounts in phase p; `names[p]`: the phase's name (a phase past the
    ladder, from an older phases.yaml, is drawn as "phase p")."""
    widest = max(counts, default=0) or 1
    room = WIDTH - LABEL_W - 40
    height = len(counts) * (BAR_H + GAP) + GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="funnel" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="Accounts per phase">'
    ]
    for phase, count in enumerate(counts):
        name = names[phase] if phase < len(names) else f"phase {phase}"
        y = GAP + phase * (BAR_H + GAP)
        bar = max(room * count / widest, 1 if count else 0)
        x = LABEL_W + (room - bar) / 2
        colour = COLOURS[min(phase, len(COLOURS) - 1)]
        label = escape(f"{phase} {name}", quote=True)
        parts.append(
            f'<g class="step" data-phase="{phase}" data-count="{count}">'
            f"<title>{label}: {count} account{'s' if count != 1 else ''}</title>"
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H * 0.7:.1f}" text-anchor="end" '
            f'font-size="12">{label}</text>'
            f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{BAR_H}" fill="{colour}"/>'
            f'<text x="{WIDTH - 8}" y="{y + BAR_H * 0.7:.1f}" text-anchor="end" '
            f'font-size="12">{count}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
