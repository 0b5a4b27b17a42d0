"""renewal_window: a healthy account's renewal is coming up; open it early."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from kizashi.triggers.rules.base import (
    HIGH_CS_SEGMENTS,
    Context,
    CsLevel,
    Reading,
    SweepContext,
    _Opportunity,
    n,
    renewal_text,
    whole,
    window_edges,
)


class RenewalWindow(_Opportunity):
    # days_to_renewal moves with the calendar, not with events.
    SWEPT: ClassVar[bool] = True
    READS_SCORES: ClassVar[bool] = True

    min_days: float = Field(ge=0)
    max_days: float = Field(gt=0)
    cs_threshold: CsLevel

    @field_validator("max_days")
    @classmethod
    def _window_not_empty(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_days")
        if low is not None and value < low:
            raise ValueError(f"must be at least min_days ({low:g})")
        return value

    def condition(self) -> str:
        cs = (
            "segment in expand/nurture"
            if self.cs_threshold == "segment"
            else f"cs >= {self.cs_threshold:g}"
        )
        return f"days_to_renewal in [{self.min_days:g}, {self.max_days:g}] and {cs}"

    def rearm(self) -> str | None:
        return "days_to_renewal outside the window (the next contract year)"

    def read(self, ctx: Context) -> Reading:
        days = ctx.f("days_to_renewal")
        if days is None or not self.min_days <= days <= self.max_days:
            return Reading("off", days)
        s = ctx.scores
        if self.cs_threshold == "segment":
            high, why = s.segment in HIGH_CS_SEGMENTS, f"segment {s.segment}"
        else:
            high, why = s.cs >= self.cs_threshold, f"healthy: at least {n(self.cs_threshold)}"
        if not high:
            return Reading("band", days)
        return Reading("on", days, (renewal_text(days, ctx.now), f"CS {n(s.cs, 0)} ({why})"))

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"renewal in {whole(ctx.features.get('days_to_renewal'))} days"

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        return window_edges(self.min_days, self.max_days, at)


RULE = RenewalWindow
