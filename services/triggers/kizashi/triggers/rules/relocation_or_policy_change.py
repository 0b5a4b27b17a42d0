"""relocation_or_policy_change: a rep logged that the customer is moving, or changed policy
toward one of `directions` (expansion by default): needs change, so does what they buy."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.rules.base import Context, Reading, _ObservationRule, _Opportunity

Direction = Literal["expansion", "cost_cutting"]
WORDS = {"expansion": "toward expansion", "cost_cutting": "toward cost cutting"}


class RelocationOrPolicyChange(_ObservationRule, _Opportunity):
    KINDS: ClassVar[tuple[str, ...]] = ("relocation", "policy_change")

    directions: list[Direction] = Field(default_factory=lambda: ["expansion"])

    def condition(self) -> str:
        return (
            "a relocation, or a policy_change toward "
            f"{' or '.join(self.directions) or 'nothing'} (within max_age)"
        )

    def rearm(self) -> str | None:
        return "a newer such observation"

    def matches(self, fact: ObservationFact) -> bool:
        if fact.kind == "relocation":
            return True
        return fact.fields.get("direction") in self.directions

    def describe(self, fact: ObservationFact) -> tuple[str, ...]:
        if fact.kind == "relocation":
            moving = fact.fields.get("moving_on")
            return (f"Relocating on {moving}" if moving else "Relocating (date not known)",)
        return (f"Policy change {WORDS.get(str(fact.fields.get('direction')), '')}".rstrip(),)

    def read(self, ctx: Context) -> Reading:
        return self.observed(ctx)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return reading.reasons[0].split(" on ")[0].lower() if reading.reasons else "relocation"


RULE = RelocationOrPolicyChange
