"""cross_sell_click: clicks on add-on or new-product links in emails."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kizashi.triggers.rules.base import Context, Reading, _Hysteresis, _Opportunity, n, whole


class CrossSellClick(_Hysteresis, _Opportunity):
    METRIC: ClassVar[str] = "cross_sell_clicks_14d"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(ge=0)

    def read(self, ctx: Context) -> Reading:
        value = ctx.f("cross_sell_clicks_14d")
        level = self.level(value)
        reasons = (f"{n(value)} clicks on add-on or new-product links in the last 14 days",)
        return Reading(level, value, reasons if level == "on" else ())

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"{whole(reading.value)} add-on clicks in 14 days"


RULE = CrossSellClick
