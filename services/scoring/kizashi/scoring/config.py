"""scoring.yaml: weights, normalisation, neutral values, segment cut-offs and priority rules.

The file is validated strictly (unknown keys, wrong types and out-of-range values are
refused) so a typo cannot silently fall back to a default. Every key is required: the
packaged default is the documented reference to copy from.
"""

import math
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from kizashi.contracts.scores import Priority
from kizashi.runtime.yamlconfig import ConfigFile, ConfigFileError
from kizashi.scoring.features import FEATURE_NAMES

FILE_NAME = "scoring.yaml"
PRIORITY_INPUTS = frozenset(FEATURE_NAMES) | {"cs", "op"}

Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# The parts fed by reps' observations (kizashi.scoring.observations): counted only once
# something is logged.
OBSERVED_PARTS = frozenset(
    {"rep_satisfaction", "outcome_realised", "key_person", "policy_change", "relationship_phase"}
)
# The parts fed by support tickets and purchases (issue #21, kizashi.scoring.support and
# .purchases): counted, like the observed parts, only for an account that sent any, so an
# account without a helpdesk or shop connected scores as before.
INPUT_PARTS = frozenset({"support_load", "purchase_growth", "cross_sell_room"})
# Every part left out of its index while it has nothing to stand on.
CONDITIONAL_PARTS = OBSERVED_PARTS | INPUT_PARTS
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Points = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class ConfigError(ConfigFileError):
    """scoring.yaml is unreadable or invalid; the message names the key path and the problem."""


class _Strict(BaseModel):
    # strict: "25" is not a number and 1 is not a version string; say so instead of coercing.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Weights(_Strict):
    @model_validator(mode="after")
    def _some_weight(self) -> "_Weights":
        if not any(
            getattr(self, name) > 0
            for name in type(self).model_fields
            if name not in CONDITIONAL_PARTS
        ):
            raise ValueError("at least one weight of a part that is not observed must be > 0")
        return self

    # Cached: score() reads these per account, and the config never changes once loaded.
    @cached_property
    def by_name(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    @cached_property
    def total(self) -> float:
        """Every weight but the conditional parts': the total of an account no rep wrote about,
        without tickets or purchases."""
        return sum(w for name, w in self.by_name.items() if name not in CONDITIONAL_PARTS)


class CsWeights(_Weights):
    usage_health: Weight
    usage_trend: Weight
    active_days: Weight
    feature_breadth: Weight
    seat_adoption: Weight
    nps: Weight
    csat: Weight
    # Observed parts (reps' observations, issue #18): left out of the index, weight and all,
    # while nothing is logged. Defaulted so that a scoring.yaml from before them loads.
    rep_satisfaction: Weight = 6
    outcome_realised: Weight = 6
    # Support load (issue #21): only for an account that sent tickets.
    support_load: Weight = 8


class OpWeights(_Weights):
    upsell_intent: Weight
    referral_intent: Weight
    pricing_interest: Weight
    cross_sell: Weight
    seat_pressure: Weight
    usage_growth: Weight
    size_fit: Weight
    decision_maker: Weight
    plan_fit: Weight
    renewal_timing: Weight
    # Observed parts, as CS's.
    key_person: Weight = 5
    policy_change: Weight = 5
    relationship_phase: Weight = 8
    # Purchases (issue #21): only for an account that bought.
    purchase_growth: Weight = 8
    cross_sell_room: Weight = 5


class CsConfig(_Strict):
    weights: CsWeights


class OpConfig(_Strict):
    weights: OpWeights


class Ramp(_Strict):
    """A linear map: ≤ low gives 0, ≥ high gives 1."""

    low: Annotated[float, Field(allow_inf_nan=False)]
    high: Annotated[float, Field(allow_inf_nan=False)]

    @model_validator(mode="after")
    def _ordered(self) -> "Ramp":
        if not self.low < self.high:
            raise ValueError("low must be < high")
        return self

    def __call__(self, value: float) -> float:
        return min(1.0, max(0.0, (value - self.low) / (self.high - self.low)))


class LogRamp(Ramp):
    """Like Ramp on a log scale, for sizes that span orders of magnitude."""

    low: Positive

    def __call__(self, value: float) -> float:
        if value <= self.low:
            return 0.0
        return min(1.0, math.log(value / self.low) / math.log(self.high / self.low))


class Normalise(_Strict):
    usage_target_per_seat_7d: Positive
    usage_target_7d: Positive
    usage_trend: Ramp
    active_days_target_14d: Annotated[float, Field(gt=0, le=14)]
    features_target_28d: Positive
    seat_adoption_target: Annotated[float, Field(gt=0, le=1)]
    high_value_visits_target_7d: Positive
    cross_sell_clicks_target_14d: Positive
    seat_pressure: Ramp
    usage_growth: Ramp
    arr: LogRamp
    employees: LogRamp
    plans: dict[str, Unit]
    renewal_window_days: Ramp
    renewal_ramp_days: Positive
    # The relationship phase: ≤ low gives 0, ≥ high (the phase an offer lands from) gives 1.
    relationship_phase: Ramp = Ramp(low=0, high=3)

    @field_validator("plans")
    @classmethod
    def _plans_by_normal_name(cls, plans: dict[str, float]) -> dict[str, float]:
        """Keys as the score looks plans up (trimmed, lower-case), so `Pro:` matches "pro"
        instead of never matching at all."""
        normal: dict[str, float] = {}
        for name, room in plans.items():
            key = name.strip().lower()
            if not key:
                raise ValueError("a plan name must not be empty")
            if key in normal:
                raise ValueError(f"{name!r} names the same plan as another key ({key!r})")
            normal[key] = room
        return normal


class Missing(_Strict):
    usage_trend: Unit
    seat_adoption: Unit
    nps: Unit
    csat: Unit
    upsell_intent: Unit
    referral_intent: Unit
    seat_pressure: Unit
    usage_growth: Unit
    size_fit: Unit
    decision_maker: Unit
    plan_fit: Unit
    renewal_timing: Unit


class Surveys(_Strict):
    half_life_days: Positive


class Observations(_Strict):
    """How long reps' observations count (issue #18): answers fade with a half-life, news
    counts in full until its max age."""

    satisfaction_half_life_days: Positive = 180
    outcome_half_life_days: Positive = 180
    key_person_max_age_days: Positive = 180
    policy_change_max_age_days: Positive = 180


_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:\d+[wdhms])+$")


def _duration(value: object) -> timedelta:
    """ "2d", "12h", "1d12h", "0s": a whole number of weeks, days, hours, minutes, seconds."""
    text = value.strip().lower().replace(" ", "") if isinstance(value, str) else None
    if not text or not _DURATION.match(text):
        raise ValueError("must be a duration like '2d', '12h', '30m', '1d12h' or '0s'")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in re.findall(r"(\d+)([wdhms])", text))
    return timedelta(seconds=seconds)


# A duration as scoring.yaml writes it; strict mode would refuse the string before parsing.
Duration = Annotated[timedelta, BeforeValidator(_duration), Field(strict=False)]


class SupportConfig(_Strict):
    """How support load lowers CS (issue #21; docs/scoring.md#support-and-purchases)."""

    # Tickets opened in 28 days: ≤ low is no load, ≥ high a full load.
    tickets_28d: Ramp = Ramp(low=2, high=12)
    # Median first response in hours: ≤ low is a fast answer, ≥ high a slow one.
    first_response_hours: Ramp = Ramp(low=4, high=48)
    # The share of a full load's cost paid even with fast answers (the rest is paid as the
    # answers slow down): 1 - load × (share + (1 - share) × slowness).
    fast_answer_share: Unit = 0.5
    # Slowness when no solve has said its first response yet.
    missing_slowness: Unit = 0.5


class PurchasesConfig(_Strict):
    """How purchases feed OP and the fiscal year end (issue #21)."""

    # The currency spend is reported in, and each currency's rate to it: an amount in a
    # currency without a rate counts as an order, not as spend.
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    rates: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {"USD": 1.0}
    # Spend in 365 days over the 365 before: ≤ low gives 0, ≥ high gives 1.
    growth: Ramp = Ramp(low=1.0, high=1.5)
    # Growth's value when the account bought nothing in the year before (no baseline).
    missing_growth: Unit = 0.5
    # The products there are to sell; cross-sell room is the share not owned yet. Empty: no
    # cross_sell_room part.
    catalogue: list[Annotated[str, Field(min_length=1)]] = []

    @model_validator(mode="after")
    def _reporting_currency_rated(self) -> "PurchasesConfig":
        if self.rates.get(self.currency) != 1.0:
            raise ValueError(f"rates must give the reporting currency {self.currency} as 1.0")
        return self

    @cached_property
    def products(self) -> tuple[str, ...]:
        return tuple(self.catalogue)


class Segments(_Strict):
    cs_high: Points
    op_high: Points
    # Hysteresis (issue #20; kizashi.scoring.segments): "high" on an axis is entered at
    # cut-off + enter_margin and left below cut-off − exit_margin, and a new segment is taken
    # only once the scores have pointed to it for min_dwell. Defaulted (0: no hysteresis) so
    # that a scoring.yaml from before them loads.
    enter_margin: Points = 0
    exit_margin: Points = 0
    min_dwell: Duration = timedelta(0)


class Condition(_Strict):
    gte: Annotated[float, Field(allow_inf_nan=False)] | None = None
    lte: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Condition":
        if self.gte is None and self.lte is None:
            raise ValueError("needs gte or lte")
        return self

    def holds(self, value: float | None) -> bool:
        # An unknown value matches nothing: a rule never fires on missing data.
        if value is None:
            return False
        return (self.gte is None or value >= self.gte) and (self.lte is None or value <= self.lte)


class PriorityRule(_Strict):
    name: str | None = None
    priority: Priority
    when: Annotated[dict[str, Condition], Field(min_length=1)]

    @field_validator("when")
    @classmethod
    def _known_inputs(cls, when: dict[str, Condition]) -> dict[str, Condition]:
        unknown = sorted(set(when) - PRIORITY_INPUTS)
        if unknown:
            raise ValueError(f"unknown input {', '.join(unknown)} (use a feature name, cs or op)")
        return when


class PriorityConfig(_Strict):
    default: Priority
    rules: list[PriorityRule]


class Changes(_Strict):
    min_points: Positive


class Sweep(_Strict):
    recheck_hours: Positive


class ConfidenceConfig(_Strict):
    # Below this confidence (0..1) an account's segment is insufficient_data.
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    # Days of usage history that count as the whole evidence of the usage components.
    usage_history_days: Positive = 28


class Watermarks(_Strict):
    """How late each source's events may arrive and still correct a sent signal (issue #20):
    an event received at most this many hours after it occurred is *within* the watermark."""

    # For a source not named under `sources`.
    default_hours: Positive = 48
    # Per ingest key name (the events' `source`), e.g. {segment: 24, import: 168}.
    sources: dict[Annotated[str, Field(min_length=1, max_length=64)], Positive] = {}

    def hours_for(self, source: str | None) -> float:
        return self.sources.get(source or "", self.default_hours)


class ScoringConfig(_Strict):
    version: Annotated[str, Field(min_length=1, max_length=64)]
    cs: CsConfig
    op: OpConfig
    normalise: Normalise
    missing: Missing
    surveys: Surveys
    observations: Observations = Observations()
    support: SupportConfig = SupportConfig()
    purchases: PurchasesConfig = PurchasesConfig()
    segments: Segments
    priority: PriorityConfig
    changes: Changes
    sweep: Sweep
    confidence: ConfidenceConfig = ConfidenceConfig()
    watermarks: Watermarks = Watermarks()


SCORING_FILE = ConfigFile(
    name=FILE_NAME, package="kizashi.scoring", model=ScoringConfig, error=ConfigError
)


def parse_scoring_config(text: str, source: str = FILE_NAME) -> ScoringConfig:
    """Parse and validate the text of a scoring.yaml; `source` prefixes every error."""
    return SCORING_FILE.parse(text, source)


def load_scoring_config(config_dir: Path | None) -> ScoringConfig:
    """`<config_dir>/scoring.yaml` when it exists, else the packaged default."""
    return SCORING_FILE.load(config_dir)
