"""key_person_left: a rep logged that a decision maker or a champion left the customer."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.rules.base import (
    Context,
    Reading,
    _ChurnRisk,
    _ObservationRule,
    quoted,
)


class KeyPersonLeft(_ObservationRule, _ChurnRisk):
    KINDS: ClassVar[tuple[str, ...]] = ("key_person_change",)

    # Roles that count as a champion (matched ignoring case, anywhere in the logged role).
    champion_roles: list[str] = Field(default_factory=lambda: ["champion"])

    def condition(self) -> str:
        return "a key_person_change: a decision maker or champion left (within max_age)"

    def rearm(self) -> str | None:
        return "a newer such observation"

    def _champion(self, role: object) -> bool:
        text = str(role).casefold()
        return any(word.casefold() in text for word in self.champion_roles)

    def matches(self, fact: ObservationFact) -> bool:
        f = fact.fields
        return f.get("change") == "left" and (
            f.get("is_decision_maker") is True or self._champion(f.get("role", ""))
        )

    def describe(self, fact: ObservationFact) -> tuple[str, ...]:
        f = fact.fields
        what = "a decision maker" if f.get("is_decision_maker") is True else "a champion"
        return (f"{quoted(f.get('person'))} ({quoted(f.get('role'))}), {what}, left",)

    def read(self, ctx: Context) -> Reading:
        return self.observed(ctx)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return "key person left"


RULE = KeyPersonLeft
