"""customer_pain: a rep logged that the customer is in pain (an urgent need, or staff new to
the job); the play is to help first."""

from __future__ import annotations

from typing import ClassVar

from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.rules.base import Context, Reading, _ObservationRule, _Opportunity

PAINS = {"urgent": "an urgent need", "inexperienced_staff": "staff new to the job"}


class CustomerPain(_ObservationRule, _Opportunity):
    KINDS: ClassVar[tuple[str, ...]] = ("customer_pain",)

    def condition(self) -> str:
        return "a customer_pain observation (within max_age)"

    def rearm(self) -> str | None:
        return "a newer customer_pain observation"

    def matches(self, fact: ObservationFact) -> bool:
        return True

    def describe(self, fact: ObservationFact) -> tuple[str, ...]:
        pain = fact.fields.get("pain")
        return (f"Customer pain: {PAINS.get(str(pain), 'unspecified')}",)

    def read(self, ctx: Context) -> Reading:
        return self.observed(ctx)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return "customer pain"


RULE = CustomerPain
