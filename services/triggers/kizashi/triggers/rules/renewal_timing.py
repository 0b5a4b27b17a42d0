"""renewal_timing: a rep heard when the contract, or the equipment's useful life, ends; the
time to offer is `min_days`–`max_days` before that date (2–4 months by default)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.rules.base import (
    Context,
    Reading,
    SweepContext,
    _Opportunity,
    logged,
    midnight,
)


def _due(facts: tuple[ObservationFact, ...]) -> tuple[ObservationFact, date] | None:
    """The newest renewal_timing observation and its due date (a newer one replaces it)."""
    for fact in facts:  # newest first
        if fact.kind == "renewal_timing" and fact.fields.get("due_date"):
            return fact, date.fromisoformat(str(fact.fields["due_date"]))
    return None


class RenewalTiming(_Opportunity):
    # The window comes with the calendar, not with events: the sweep finds it.
    SWEPT: ClassVar[bool] = True

    min_days: int = Field(ge=0)
    max_days: int = Field(gt=0)

    @field_validator("max_days")
    @classmethod
    def _window_not_empty(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_days")
        if low is not None and value < low:
            raise ValueError(f"must be at least min_days ({low})")
        return value

    def condition(self) -> str:
        return (
            f"the due_date a rep logged (renewal_timing) is {self.min_days}–{self.max_days} "
            "days away"
        )

    def rearm(self) -> str | None:
        return "a newer renewal_timing observation"

    def read(self, ctx: Context) -> Reading:
        found = _due(ctx.observations)
        if found is None:
            return Reading("unknown")
        fact, due = found
        days = (due - ctx.now.astimezone(UTC).date()).days
        if not self.min_days <= days <= self.max_days:
            return Reading("off", float(days))
        reasons = (f"Due on {due.isoformat()}, in {days} days", logged(fact))
        return Reading("on", float(days), reasons, answered_at=fact.occurred_at)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"due in {reading.value:.0f} days" if reading.value is not None else "due date"

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        found = _due(at.observations)
        if found is None:
            return []
        due = found[1]
        days = (due - at.now.astimezone(UTC).date()).days
        if days > self.max_days:
            return [midnight(due - timedelta(days=self.max_days))]
        if days >= self.min_days:
            return [midnight(due - timedelta(days=self.min_days - 1))]
        return []


RULE = RenewalTiming
