"""inactivity: no product usage for a number of days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

from pydantic import Field

from kizashi.contracts.decay import DAY_S
from kizashi.triggers.rules.base import (
    Context,
    Reading,
    SweepContext,
    _ChurnRisk,
    _Hysteresis,
    from_epoch,
    whole,
)


class Inactivity(_Hysteresis, _ChurnRisk):
    # Silence is the absence of events: only the clock can make this rule fire.
    SWEPT: ClassVar[bool] = True
    HELD_WHILE_HISTORY_ARRIVES: ClassVar[bool] = True
    METRIC: ClassVar[str] = "days_since_usage"

    threshold: float = Field(gt=0)
    rearm_at: float = Field(gt=0)

    def read(self, ctx: Context) -> Reading:
        # Measured against `now`, so a sweep with features computed a while ago counts right.
        last = ctx.f("last_usage_at")
        last_at = from_epoch(last) if last is not None else None
        days = (ctx.now - last_at) / timedelta(days=1) if last_at else ctx.f("days_since_usage")
        level = self.level(days)
        if level != "on" or days is None:
            return Reading(level, days)
        reason = f"No product usage for {int(days)} days"
        if last_at is not None:
            reason += f" (last on {last_at:%Y-%m-%d})"
        return Reading("on", days, (reason,))

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"no usage for {whole(reading.value)} days"

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        last = at.features.get("last_usage_at")
        if last is None:
            return []
        return [datetime.fromtimestamp(last + self.threshold * DAY_S, UTC)]


RULE = Inactivity
