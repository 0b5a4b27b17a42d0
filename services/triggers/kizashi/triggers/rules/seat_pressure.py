"""seat_pressure: nearly every seat bought is in use."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kizashi.triggers.rules.base import Context, Reading, _Hysteresis, _Opportunity, n, whole


class SeatPressure(_Hysteresis, _Opportunity):
    METRIC: ClassVar[str] = "seat_utilisation"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(ge=0)

    def read(self, ctx: Context) -> Reading:
        value, users, seats = ctx.f("seat_utilisation"), ctx.f("active_users_28d"), ctx.f("seats")
        level = self.level(value)
        if level != "on" or value is None:
            return Reading(level, value)
        share = f"{value:.0%}"
        reason = (
            f"{n(users)} active users on {n(seats)} seats ({share} of seats)"
            if users is not None and seats is not None
            else f"{share} of seats in use"
        )
        return Reading("on", value, (f"{reason} in 28 days",))

    def headline(self, reading: Reading, ctx: Context) -> str:
        active, seats = ctx.features.get("active_users_28d"), ctx.features.get("seats")
        return f"{whole(active)} of {whole(seats)} seats in use"


RULE = SeatPressure
