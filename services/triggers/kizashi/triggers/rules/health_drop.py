"""health_drop: CS fell from its high point within a recent window."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from kizashi.triggers.rules.base import (
    INSUFFICIENT,
    Context,
    Duration,
    Reading,
    _ChurnRisk,
    _Hysteresis,
    _Watched,
    n,
    whole,
)


class HealthDrop(_Hysteresis, _Watched, _ChurnRisk):
    METRIC: ClassVar[str] = "CS fall from its window high"
    MEASURE: ClassVar[str] = "cs"
    READS_SCORES: ClassVar[bool] = True
    window: Duration
    threshold: float = Field(gt=0, le=100)
    rearm_at: float = Field(ge=0)

    def read(self, ctx: Context) -> Reading:
        cs = ctx.scores.cs
        start = ctx.now - self.window
        points = [v for t, v in ctx.cs_history if start <= t <= ctx.now]
        # The history holds every published CS with its time, `before` among them. Without any
        # (triggers' memory starts mid-stream), `before` is the one earlier CS known; when the
        # history has points, `before` may be older than the window and must not count.
        # A CS of too little evidence is no high point: its fall is evidence arriving.
        if ctx.before is not None and not ctx.cs_history and ctx.before.segment != INSUFFICIENT:
            points.append(ctx.before.cs)
        peak = max([cs, *points])
        drop = peak - cs
        level = self.level(drop)
        days = n(self.window / timedelta(days=1), 0)
        fell = round(peak) - round(cs)
        reason = f"CS fell {fell} points in {days} days ({round(peak)} → {round(cs)})"
        return Reading(level, drop, (reason,) if level == "on" else ())

    def headline(self, reading: Reading, ctx: Context) -> str:
        # "14 days" as the headline always said, whatever the window (the reasons give it).
        return f"CS down {whole(reading.value)} points in 14 days"


RULE = HealthDrop
