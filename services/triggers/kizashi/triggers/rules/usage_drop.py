"""usage_drop: the last 7 days' usage rate fell well under the 28-day baseline rate."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import Field

from kizashi.contracts.decay import MEAN_LIFE_7D_S, MEAN_LIFE_28D_S
from kizashi.triggers.rules.base import (
    PAST_EDGE,
    Context,
    Reading,
    SweepContext,
    _ChurnRisk,
    _Hysteresis,
    _Watched,
    n,
    whole,
)

# In silence the 7-day rate falls against the 28-day baseline at this rate (per second).
_TREND_DECAY = 1 / MEAN_LIFE_7D_S - 1 / MEAN_LIFE_28D_S


class UsageDrop(_Hysteresis, _Watched, _ChurnRisk):
    # In silence the decayed counters keep falling: the drop can happen without any event.
    SWEPT: ClassVar[bool] = True
    HELD_WHILE_HISTORY_ARRIVES: ClassVar[bool] = True
    RISING: ClassVar[bool] = False
    METRIC: ClassVar[str] = "usage_trend"
    MEASURE: ClassVar[str] = "usage"
    # Usage down by this many per cent of what it was when snoozed (under 100).
    reopen_if_worse_by: float | None = Field(default=None, gt=0, lt=100)

    threshold: float = Field(gt=0)
    rearm_at: float = Field(gt=0)
    min_usage_28d: float = Field(ge=0)

    def read(self, ctx: Context) -> Reading:
        trend, u7, u28 = ctx.f("usage_trend"), ctx.f("usage_7d"), ctx.f("usage_28d")
        if trend is None or (u28 is not None and u28 < self.min_usage_28d):
            return Reading("unknown")
        level = self.level(trend)
        if level != "on":
            return Reading(level, trend)
        # Floored, so a trend just under a 50 % threshold never reads "at 50 %".
        share = math.floor(trend * 100)
        reasons = [f"Usage in the last 7 days is at {share}% of the 28-day baseline rate"]
        if u7 is not None and u28 is not None:
            reasons.append(f"≈ {n(u7, 0)} usage events in 7 days against ≈ {n(u28, 0)} in 28 days")
        return Reading("on", trend, tuple(reasons))

    def headline(self, reading: Reading, ctx: Context) -> str:
        share = None if reading.value is None else int(reading.value * 100)
        return f"usage down to {whole(share)}% of its baseline"

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        """When, in silence, the trend falls under the threshold while the baseline still
        counts."""
        trend, u28 = at.features.get("usage_trend"), at.features.get("usage_28d")
        if trend is None or u28 is None or trend < self.threshold or u28 < self.min_usage_28d:
            return []
        fires_in = math.log(trend / self.threshold) / _TREND_DECAY
        baseline_gone_in = (
            math.inf
            if self.min_usage_28d <= 0
            else math.log(u28 / self.min_usage_28d) * MEAN_LIFE_28D_S
        )
        if fires_in >= baseline_gone_in:
            return []
        return [at.now + timedelta(seconds=fires_in) + PAST_EDGE]


RULE = UsageDrop
