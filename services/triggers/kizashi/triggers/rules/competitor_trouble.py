"""competitor_trouble: a rep heard that a competitor let the customer down."""

from __future__ import annotations

from typing import ClassVar

from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.rules.base import Context, Reading, _ObservationRule, _Opportunity, quoted


class CompetitorTrouble(_ObservationRule, _Opportunity):
    KINDS: ClassVar[tuple[str, ...]] = ("competitor_trouble",)

    def condition(self) -> str:
        return "a competitor_trouble observation (within max_age)"

    def rearm(self) -> str | None:
        return "a newer competitor_trouble observation"

    def matches(self, fact: ObservationFact) -> bool:
        return True

    def describe(self, fact: ObservationFact) -> tuple[str, ...]:
        f = fact.fields
        return (f"Competitor {quoted(f.get('competitor'))}: {quoted(f.get('what'))}",)

    def read(self, ctx: Context) -> Reading:
        return self.observed(ctx)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return "competitor trouble"


RULE = CompetitorTrouble
