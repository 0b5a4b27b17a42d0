"""renewal_at_risk: the renewal is close and the account is not healthy."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from kizashi.triggers.rules.base import (
    HIGH_CS_SEGMENTS,
    Context,
    CsLevel,
    Level,
    Reading,
    SweepContext,
    _ChurnRisk,
    _Watched,
    n,
    renewal_text,
    whole,
    window_edges,
)


class RenewalAtRisk(_Watched, _ChurnRisk):
    # days_to_renewal moves with the calendar, not with events.
    SWEPT: ClassVar[bool] = True
    READS_SCORES: ClassVar[bool] = True
    MEASURE: ClassVar[str] = "cs"

    within_days: float = Field(gt=0)
    cs_threshold: CsLevel
    cs_rearm_at: float | None = None

    @field_validator("cs_rearm_at")
    @classmethod
    def _rearm_above_threshold(cls, value: float | None, info: ValidationInfo) -> float | None:
        threshold = info.data.get("cs_threshold")
        if threshold == "segment" and value is not None:
            raise ValueError("must be null when cs_threshold is 'segment'")
        if isinstance(threshold, float | int) and value is not None and value < threshold:
            raise ValueError(f"must be at least cs_threshold ({threshold:g})")
        return value

    @property
    def cs_rearm(self) -> float:
        assert self.cs_threshold != "segment"
        return self.cs_threshold if self.cs_rearm_at is None else self.cs_rearm_at

    def condition(self) -> str:
        cs = (
            "segment in recover/at_risk"
            if self.cs_threshold == "segment"
            else f"cs < {self.cs_threshold:g}"
        )
        return f"days_to_renewal in [0, {self.within_days:g}] and {cs}"

    def rearm(self) -> str | None:
        if self.cs_threshold == "segment":
            return "renewal outside the window or segment in expand/nurture"
        return f"renewal outside the window or cs >= {self.cs_rearm:g}"

    def read(self, ctx: Context) -> Reading:
        days, s = ctx.f("days_to_renewal"), ctx.scores
        if days is None or not 0 <= days <= self.within_days:
            return Reading("off", s.cs)
        if self.cs_threshold == "segment":
            level: Level = "off" if s.segment in HIGH_CS_SEGMENTS else "on"
            why = f"segment {s.segment}"
        else:
            level = "on" if s.cs < self.cs_threshold else "off" if s.cs >= self.cs_rearm else "band"
            why = f"below {n(self.cs_threshold)}"
        reasons = (renewal_text(days, ctx.now), f"CS {n(s.cs, 0)} ({why})")
        return Reading(level, s.cs, reasons if level == "on" else ())

    def headline(self, reading: Reading, ctx: Context) -> str:
        days = whole(ctx.features.get("days_to_renewal"))
        return f"renewal in {days} days with CS {ctx.scores.cs:.0f}"

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        return window_edges(0.0, self.within_days, at)


RULE = RenewalAtRisk
