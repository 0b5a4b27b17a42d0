"""new_decision_maker: a rep logged that a new decision maker joined; introduce ourselves."""

from __future__ import annotations

from typing import ClassVar

from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.rules.base import Context, Reading, _ObservationRule, _Opportunity, quoted


class NewDecisionMaker(_ObservationRule, _Opportunity):
    KINDS: ClassVar[tuple[str, ...]] = ("key_person_change",)

    def condition(self) -> str:
        return "a key_person_change: a decision maker joined (within max_age)"

    def rearm(self) -> str | None:
        return "a newer such observation"

    def matches(self, fact: ObservationFact) -> bool:
        f = fact.fields
        return f.get("change") == "joined" and f.get("is_decision_maker") is True

    def describe(self, fact: ObservationFact) -> tuple[str, ...]:
        f = fact.fields
        return (f"{quoted(f.get('person'))} ({quoted(f.get('role'))}) joined as a decision maker",)

    def read(self, ctx: Context) -> Reading:
        return self.observed(ctx)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return "new decision maker"


RULE = NewDecisionMaker
