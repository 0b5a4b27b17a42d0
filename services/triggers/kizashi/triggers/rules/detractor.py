"""detractor: a low NPS or CSAT answer."""

from __future__ import annotations

import re

from pydantic import Field

from kizashi.triggers.rules.base import Context, Duration, Reading, _ChurnRisk, from_epoch, n

_ON_DATE = re.compile(r" on \d{4}-\d{2}-\d{2}")


class Detractor(_ChurnRisk):
    nps_threshold: float = Field(ge=0, le=10)
    csat_threshold: float = Field(ge=1, le=5)
    max_age: Duration

    def condition(self) -> str:
        return f"a new answer with nps <= {self.nps_threshold:g} or csat <= {self.csat_threshold:g}"

    def rearm(self) -> str | None:
        return "a new survey answer"

    def read(self, ctx: Context) -> Reading:
        known, bad, reasons = False, [], []
        for label, key, limit, scale in (
            ("NPS", "nps", self.nps_threshold, ""),
            ("CSAT", "csat", self.csat_threshold, "/5"),
        ):
            value, at = ctx.f(key), ctx.f(f"{key}_at")
            if value is None or at is None:
                continue
            known = True
            if value <= limit:
                answered, prev = from_epoch(at), ctx.f(f"{key}_previous")
                was = f" (was {n(prev)}{scale})" if prev is not None else ""
                bad.append((answered, value))
                reasons.append(f"{label} {n(value)}{scale} on {answered:%Y-%m-%d}{was}")
        if not bad:
            return Reading("off" if known else "unknown")
        answered, value = max(bad)
        return Reading("on", value, tuple(reasons), answered_at=answered)

    def headline(self, reading: Reading, ctx: Context) -> str:
        if reading.reasons:
            return _ON_DATE.sub("", reading.reasons[0])  # "NPS 2 (was 8)"
        return "detractor"


RULE = Detractor
