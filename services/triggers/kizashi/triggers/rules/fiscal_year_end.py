"""fiscal_year_end: the account's fiscal year ends within a set number of weeks (issue #21).
Customers plan next year's budget then: approach them ahead of it.

The month comes from the CRM (account_update fiscal_year_end) or, without it, is inferred by
scoring from the months the account buys in (feature fiscal_year_end_month,
fiscal_year_end_inferred). Each fiscal year is an episode: the rule re-arms once the year end
has passed (days_to_fiscal_year_end jumps to the next year's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from kizashi.contracts.fiscal import next_fiscal_year_end
from kizashi.triggers.rules.base import Context, Reading, SweepContext, _Opportunity, midnight

_MONTHS = (
    "January February March April May June July August September October November December"
).split()


class FiscalYearEnd(_Opportunity):
    # days_to_fiscal_year_end moves with the calendar, not with events.
    SWEPT: ClassVar[bool] = True

    weeks_before: float = Field(gt=0, le=52)
    # Re-arms once the year end is more than this many days away: the year end has passed
    # and the next is a year off. Between the window and this, nothing changes.
    rearm_days: float = Field(gt=0, le=366)

    @field_validator("rearm_days")
    @classmethod
    def _beyond_the_window(cls, value: float, info: ValidationInfo) -> float:
        weeks = info.data.get("weeks_before")
        if weeks is not None and value <= weeks * 7:
            raise ValueError(f"must be more than weeks_before in days ({weeks * 7:g})")
        return value

    def condition(self) -> str:
        return f"days_to_fiscal_year_end <= {self.weeks_before * 7:g}"

    def rearm(self) -> str | None:
        return f"days_to_fiscal_year_end > {self.rearm_days:g} (the year end has passed)"

    def read(self, ctx: Context) -> Reading:
        days, month = ctx.f("days_to_fiscal_year_end"), ctx.f("fiscal_year_end_month")
        if days is None or month is None:
            return Reading("unknown")
        if days > self.rearm_days:
            return Reading("off", days)
        if days > self.weeks_before * 7:
            return Reading("band", days)
        end = ctx.now.astimezone(UTC).date() + timedelta(days=int(days))
        source = (
            "inferred from the months it buys in"
            if ctx.f("fiscal_year_end_inferred")
            else "from the CRM"
        )
        reasons = [f"Fiscal year ends on {end:%Y-%m-%d}, in {days:.0f} days ({source})"]
        spend, growth = ctx.f("spend_365d"), ctx.f("spend_growth")
        if spend:
            grew = f", {growth * 100:.0f}% of the year before" if growth is not None else ""
            reasons.append(f"Spent {spend:,.0f} in the last 365 days{grew}")
        return Reading("on", days, tuple(reasons))

    def headline(self, reading: Reading, ctx: Context) -> str:
        month = ctx.f("fiscal_year_end_month")
        name = "?" if month is None else _MONTHS[int(month) - 1]
        return f"fiscal year ends in {name}"

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        """The midnight the window opens, and the one after the year end (it re-arms)."""
        month = at.features.get("fiscal_year_end_month")
        if month is None:
            return []
        today = at.now.astimezone(UTC).date()
        end = next_fiscal_year_end(int(month), today)
        opens = end - timedelta(days=int(self.weeks_before * 7))
        return [midnight(opens) if opens > today else midnight(end + timedelta(days=1))]


RULE = FiscalYearEnd
