"""What every rule is made of: the config bases (common keys, kinds, hysteresis), durations,
the reading a rule makes of an account, and the number formatting its reasons use.

A rule module (one per rule, named after it) subclasses `_Opportunity` or `_ChurnRisk` and
fills in `read` (features and scores -> a `Reading`), `headline` and, when the clock alone can
move its condition, `SWEPT = True` and `sweep_edges`. The engine and the sweep only ever call
these through the base interface.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from kizashi.contracts.scores import ObservationFact, ScoreSnapshot

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:\d+[wdhms])+$")
# A threshold is crossed strictly after the exact instant; sweep a moment later.
PAST_EDGE = timedelta(seconds=1)
HIGH_CS_SEGMENTS = ("expand", "nurture")

Level = Literal["on", "off", "band", "unknown"]


# --------------------------------------------------------------------------- durations


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower().replace(" ", "") if isinstance(value, str) else None
    if not text or not _DURATION.match(text):
        raise ValueError("must be a duration like '7d', '12h', '30m' or '1d12h'")
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([wdhms])", text))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
RulePriority = Literal["high", "medium", "low", "account"]


def _cs_level(value: Any) -> Any:
    if value == "segment" or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise ValueError("must be a number (0-100) or 'segment'")


# A CS level, or "segment" to read high/low from the account's segment instead.
CsLevel = Annotated[float | Literal["segment"], BeforeValidator(_cs_level)]


# --------------------------------------------------------------------------- readings


class Reading(NamedTuple):
    """What a rule made of the account: its level, the value behind it and the reasons.

    Immutable; a named tuple rather than a frozen dataclass because every rule makes one on
    every change, and a frozen dataclass's __init__ sets each field through
    object.__setattr__ (about 1 µs against 0.2)."""

    level: Level
    value: float | None = None
    reasons: tuple[str, ...] = ()
    # Survey rules: the answer that makes the condition true (a newer one = a new episode).
    answered_at: datetime | None = None
    # expansion_ready: crossed into the condition since the previous scores (forces re-arm).
    entered: bool = False


@dataclass(frozen=True)
class Context:
    """Everything a rule may read about one account at one moment."""

    features: dict[str, float | None]
    scores: ScoreSnapshot
    before: ScoreSnapshot | None
    cs_history: list[tuple[datetime, float]]
    now: datetime
    # What reps logged (the newest few of each kind, newest first) and the relationship phase.
    observations: tuple[ObservationFact, ...] = ()
    phase: int = 0

    def f(self, name: str) -> float | None:
        value = self.features.get(name)
        return None if value is None else float(value)


@dataclass(frozen=True)
class SweepContext:
    """What a clock-driven rule needs to say when its condition can next change."""

    features: dict[str, float | None]  # already moved to `now` (schedule.features_now)
    renewal: date | None
    now: datetime
    observations: tuple[ObservationFact, ...] = ()


# --------------------------------------------------------------------------- config bases


# The segment of an account whose scores stand on too little evidence (scoring's
# min_confidence): rules that READS_SCORES stay quiet on it.
INSUFFICIENT = "insufficient_data"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The periodic sweep evaluates this rule: its condition moves with the clock alone.
    SWEPT: ClassVar[bool] = False
    # Held by `daily_cap_per_account` and counted toward it (rules on reps' observations are
    # not: see _ObservationRule).
    CAPPED: ClassVar[bool] = True
    # The rule reads the scores (CS, OP or the segment): it stays quiet, its state as it was,
    # while the account's segment is insufficient_data (too little evidence for the scores;
    # docs/signals.md). Rules on raw facts (a survey answer, usage, visits) never set it.
    READS_SCORES: ClassVar[bool] = False
    # The rule measures usage against the clock (silence, a falling rate): on a change that is
    # history arriving (RuleBook.backfill) it holds its state, as the history so far is not
    # the account's present; the sweep judges it once the history has settled.
    HELD_WHILE_HISTORY_ARRIVES: ClassVar[bool] = False

    enabled: bool
    cooldown: Duration
    priority: RulePriority
    suggested_play: str = Field(min_length=1)

    def condition(self) -> str:
        raise NotImplementedError

    def rearm(self) -> str | None:
        return None

    def read(self, ctx: Context) -> Reading:
        """The rule's level for this account now; called for every rule on every change."""
        raise NotImplementedError

    def headline(self, reading: Reading, ctx: Context) -> str:
        """A few words with the key figure, for an email subject or a Slack header."""
        raise NotImplementedError

    def sweep_edges(self, at: SweepContext) -> list[datetime]:
        """For SWEPT rules: the moments the clock alone can move the condition."""
        return []


# For annotations: any rule's config.
RuleConfig = _Rule


class _Opportunity(_Rule):
    kind: Literal["opportunity"]


class _ChurnRisk(_Rule):
    kind: Literal["churn_risk"]
    auto_resolve_after: Duration | None


class _Hysteresis(BaseModel):
    """`threshold` fires, `rearm_at` re-arms; RISING says which side of it is the alarm."""

    RISING: ClassVar[bool] = True
    METRIC: ClassVar[str] = ""

    threshold: float
    rearm_at: float

    @field_validator("rearm_at")
    @classmethod
    def _rearm_on_the_quiet_side(cls, value: float, info: ValidationInfo) -> float:
        threshold = info.data.get("threshold")
        if threshold is None:
            return value
        if cls.RISING and value > threshold:
            raise ValueError(f"must be at most threshold ({threshold:g})")
        if not cls.RISING and value < threshold:
            raise ValueError(f"must be at least threshold ({threshold:g})")
        return value

    def condition(self) -> str:
        return f"{self.METRIC} {'>=' if self.RISING else '<'} {self.threshold:g}"

    def rearm(self) -> str | None:
        return f"{self.METRIC} {'<' if self.RISING else '>='} {self.rearm_at:g}"

    def level(self, value: float | None) -> Level:
        if value is None:
            return "unknown"
        if self.RISING:
            return "on" if value >= self.threshold else "off" if value < self.rearm_at else "band"
        return "on" if value < self.threshold else "off" if value >= self.rearm_at else "band"


class _Watched(BaseModel):
    """A rule whose snoozed signal reopens, once, when its MEASURE gets worse by
    `reopen_if_worse_by` since the snooze (kizashi.triggers.worse: "cs" in points, "usage"
    in per cent). Unset (null): the snooze holds until its time, as for every other rule."""

    MEASURE: ClassVar[str]

    reopen_if_worse_by: float | None = Field(default=None, gt=0)


# --------------------------------------------------------------------------- observations


class _ObservationRule(BaseModel):
    """A rule on reps' observations: each matching observation is an episode of its own
    (its time is the episode's, as a survey answer's is), acted on within `max_age`.

    Not held by the daily cap, nor counted toward it: the cap keeps machine-read signals from
    piling on one account, while an observation is news a person chose to log (a decision
    maker leaving must not wait for tomorrow because usage fell the same day)."""

    CAPPED: ClassVar[bool] = False

    max_age: Duration

    def matches(self, fact: ObservationFact) -> bool:
        raise NotImplementedError

    KINDS: ClassVar[tuple[str, ...]] = ()

    def observed(self, ctx: Context) -> Reading:
        """ "on" for the newest matching observation within max_age (its reasons from
        `describe`), "off" when the account has observations of the rule's kinds but none
        matches now, "unknown" when it has none."""
        facts = [f for f in ctx.observations if f.kind in self.KINDS]
        if not facts:
            return Reading("unknown")
        for fact in facts:  # newest first
            if ctx.now - fact.occurred_at <= self.max_age and self.matches(fact):
                return Reading(
                    "on", None, (*self.describe(fact), logged(fact)), answered_at=fact.occurred_at
                )
        return Reading("off")

    def describe(self, fact: ObservationFact) -> tuple[str, ...]:
        raise NotImplementedError


def quoted(value: object, limit: int = 120) -> str:
    """A rep's free text inside a reason: on one line, clipped, in quotes. Reasons are plain
    text; each channel escapes them for itself (kizashi.notifier.render)."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def logged(fact: ObservationFact) -> str:
    return f"Logged by {quoted(fact.author)} on {fact.occurred_at:%Y-%m-%d}"


# --------------------------------------------------------------------------- formatting


def n(value: float | None, digits: int = 2) -> str:
    """A number as a rep reads it: 3, 0.45, 74 (no trailing zeros)."""
    if value is None:
        return "?"
    if digits == 0 or float(value).is_integer():
        return str(round(value))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def whole(value: float | None) -> str:
    """A headline's figure: rounded to a whole number."""
    return "?" if value is None else f"{value:.0f}"


def renewal_text(days: float, now: datetime) -> str:
    return f"Renewal in {int(days)} days (on {now + timedelta(days=days):%Y-%m-%d})"


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def window_edges(low: float, high: float, at: SweepContext) -> list[datetime]:
    """The next UTC midnight at which days_to_renewal enters or leaves [low, high]."""
    if at.renewal is None:
        return []
    days = (at.renewal - at.now.astimezone(UTC).date()).days
    if days > high:
        return [midnight(at.renewal - timedelta(days=math.floor(high)))]
    if days >= low:
        return [midnight(at.renewal - timedelta(days=math.ceil(low) - 1))]
    return []
