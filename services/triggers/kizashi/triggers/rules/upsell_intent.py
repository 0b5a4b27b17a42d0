"""upsell_intent: a survey answer says the account would consider the premium plan."""

from __future__ import annotations

from pydantic import Field

from kizashi.triggers.rules.base import (
    Context,
    Duration,
    Reading,
    _Opportunity,
    from_epoch,
    n,
    whole,
)


class UpsellIntent(_Opportunity):
    threshold: float = Field(ge=0, le=10)
    max_age: Duration

    def condition(self) -> str:
        return f"a new survey answer with upsell_intent >= {self.threshold:g}"

    def rearm(self) -> str | None:
        return "a new survey answer"

    def read(self, ctx: Context) -> Reading:
        value, at = ctx.f("upsell_intent"), ctx.f("upsell_intent_at")
        if value is None or at is None:
            return Reading("unknown")
        if value < self.threshold:
            return Reading("off", value)
        answered = from_epoch(at)
        reasons = (
            f"Upsell intent {n(value)}/10 in a survey on {answered:%Y-%m-%d}",
            f"OP {n(ctx.scores.op, 0)}, CS {n(ctx.scores.cs, 0)} ({ctx.scores.segment})",
        )
        return Reading("on", value, reasons, answered_at=answered)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"upsell intent {whole(reading.value)}/10"


RULE = UpsellIntent
