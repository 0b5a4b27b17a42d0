"""pricing_interest: repeated visits to the pricing (or other high-value) pages."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kizashi.triggers.rules.base import Context, Reading, _Hysteresis, _Opportunity, n, whole


class PricingInterest(_Hysteresis, _Opportunity):
    METRIC: ClassVar[str] = "high_value_visits_7d"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(ge=0)

    def read(self, ctx: Context) -> Reading:
        visits, pricing = ctx.f("high_value_visits_7d"), ctx.f("pricing_visits_7d")
        value = visits if visits is not None else pricing
        level = self.level(value)
        if level != "on" or value is None:
            return Reading(level, value)
        if visits is None or pricing is None or visits == pricing:
            reason = f"{n(value)} pricing visits in the last 7 days"
        else:
            reason = (
                f"{n(visits)} pricing or product page visits in the last 7 days "
                f"({n(pricing)} on pricing)"
            )
        return Reading("on", value, (reason,))

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"{whole(reading.value)} pricing visits in 7 days"


RULE = PricingInterest
