"""support_surge: tickets in the last 7 days well above the account's own baseline (issue #21).
More questions mean more use: offer a support plan or training."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from kizashi.triggers.rules.base import Context, Reading, _Opportunity, n, whole


class SupportSurge(_Opportunity):
    # Tickets opened in 7 days must reach `factor` × the baseline (the weekly rate of the 90
    # days before them) and `min_tickets`; the rule re-arms below `rearm_below` tickets.
    factor: float = Field(gt=0)
    min_tickets: float = Field(ge=1)
    rearm_below: float = Field(ge=0)

    @field_validator("rearm_below")
    @classmethod
    def _rearm_on_the_quiet_side(cls, value: float, info: ValidationInfo) -> float:
        least = info.data.get("min_tickets")
        if least is not None and value > least:
            raise ValueError(f"must be at most min_tickets ({least:g})")
        return value

    def condition(self) -> str:
        return (
            f"tickets_7d >= {self.factor:g} x tickets_baseline_7d "
            f"and tickets_7d >= {self.min_tickets:g}"
        )

    def rearm(self) -> str | None:
        return f"tickets_7d < {self.rearm_below:g}"

    def read(self, ctx: Context) -> Reading:
        tickets, baseline = ctx.f("tickets_7d"), ctx.f("tickets_baseline_7d")
        if tickets is None or baseline is None:  # no helpdesk connected
            return Reading("unknown")
        if tickets < self.rearm_below:
            return Reading("off", tickets)
        if tickets < self.min_tickets or tickets < self.factor * baseline:
            return Reading("band", tickets)
        if baseline:
            against = f"{n(tickets / baseline, 1)}x its usual {n(baseline, 1)} a week"
        else:
            against = "none in the 90 days before"
        reasons = [f"{n(tickets, 0)} support tickets opened in the last 7 days, {against}"]
        open_now = ctx.f("open_tickets")
        if open_now:
            reasons.append(f"{n(open_now, 0)} open now")
        return Reading("on", tickets, tuple(reasons))

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"{whole(ctx.features.get('tickets_7d'))} tickets this week"


RULE = SupportSurge
