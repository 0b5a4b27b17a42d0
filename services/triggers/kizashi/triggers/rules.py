"""The rule catalogue's configuration: `rules.yaml`, validated, as a `RuleBook`.

The rule names are fixed (each has evaluation code in `engine.py`); the file tunes them.
A `rules.yaml` in the config dir is laid over the packaged default key by key, so an operator
only writes what they change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from kizashi.runtime.yamlconfig import ConfigFileError, load_yaml

DEFAULT_RULES_PATH = Path(__file__).parent / "defaults" / "rules.yaml"
FILE_NAME = "rules.yaml"

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:\d+[wdhms])+$")


class RulesConfigError(ConfigFileError):
    """rules.yaml is unreadable or invalid; the message names the rule and the key."""


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
# A CS level, or "segment" to read high/low from the account's segment instead.
CsLevel = float | Literal["segment"]


def _cs_level(value: Any) -> Any:
    if value == "segment" or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise ValueError("must be a number (0-100) or 'segment'")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    cooldown: Duration
    priority: RulePriority
    suggested_play: str = Field(min_length=1)

    def condition(self) -> str:
        raise NotImplementedError

    def rearm(self) -> str | None:
        return None


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


class ExpansionReady(_Opportunity):
    def condition(self) -> str:
        return "the account enters the expand segment"

    def rearm(self) -> str | None:
        return "the account leaves the expand segment"


class UpsellIntent(_Opportunity):
    threshold: float = Field(ge=0, le=10)
    max_age: Duration

    def condition(self) -> str:
        return f"a new survey answer with upsell_intent >= {self.threshold:g}"

    def rearm(self) -> str | None:
        return "a new survey answer"


class PricingInterest(_Hysteresis, _Opportunity):
    METRIC: ClassVar[str] = "high_value_visits_7d"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(ge=0)


class CrossSellClick(_Hysteresis, _Opportunity):
    METRIC: ClassVar[str] = "cross_sell_clicks_14d"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(ge=0)


class SeatPressure(_Hysteresis, _Opportunity):
    METRIC: ClassVar[str] = "seat_utilisation"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(ge=0)


class RenewalWindow(_Opportunity):
    min_days: float = Field(ge=0)
    max_days: float = Field(gt=0)
    cs_threshold: Annotated[CsLevel, BeforeValidator(_cs_level)]

    @field_validator("max_days")
    @classmethod
    def _window_not_empty(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_days")
        if low is not None and value < low:
            raise ValueError(f"must be at least min_days ({low:g})")
        return value

    def condition(self) -> str:
        cs = (
            "segment in expand/nurture"
            if self.cs_threshold == "segment"
            else f"cs >= {self.cs_threshold:g}"
        )
        return f"days_to_renewal in [{self.min_days:g}, {self.max_days:g}] and {cs}"

    def rearm(self) -> str | None:
        return "days_to_renewal outside the window (the next contract year)"


class UsageDrop(_Hysteresis, _ChurnRisk):
    RISING: ClassVar[bool] = False
    METRIC: ClassVar[str] = "usage_trend"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(gt=0)
    min_usage_28d: float = Field(ge=0)


class Inactivity(_Hysteresis, _ChurnRisk):
    METRIC: ClassVar[str] = "days_since_usage"
    threshold: float = Field(gt=0)
    rearm_at: float = Field(gt=0)


class Detractor(_ChurnRisk):
    nps_threshold: float = Field(ge=0, le=10)
    csat_threshold: float = Field(ge=1, le=5)
    max_age: Duration

    def condition(self) -> str:
        return f"a new answer with nps <= {self.nps_threshold:g} or csat <= {self.csat_threshold:g}"

    def rearm(self) -> str | None:
        return "a new survey answer"


class HealthDrop(_Hysteresis, _ChurnRisk):
    METRIC: ClassVar[str] = "CS fall from its window high"
    window: Duration
    threshold: float = Field(gt=0, le=100)
    rearm_at: float = Field(ge=0)


class RenewalAtRisk(_ChurnRisk):
    within_days: float = Field(gt=0)
    cs_threshold: Annotated[CsLevel, BeforeValidator(_cs_level)]
    cs_rearm_at: float | None = None

    @field_validator("cs_rearm_at")
    @classmethod
    def _rearm_above_threshold(cls, value: float | None, info: ValidationInfo) -> float | None:
        threshold = info.data.get("cs_threshold")
        if threshold == "segment" and value is not None:
            raise ValueError("must be null when cs_threshold is 'segment'")
        if isinstance(threshold, float | int) and value is not None and value < threshold:
            raise ValueError(f"must be at least cs_threshold ({threshold:g})")
        return value

    @property
    def cs_rearm(self) -> float:
        assert self.cs_threshold != "segment"
        return self.cs_threshold if self.cs_rearm_at is None else self.cs_rearm_at

    def condition(self) -> str:
        cs = (
            "segment in recover/at_risk"
            if self.cs_threshold == "segment"
            else f"cs < {self.cs_threshold:g}"
        )
        return f"days_to_renewal in [0, {self.within_days:g}] and {cs}"

    def rearm(self) -> str | None:
        if self.cs_threshold == "segment":
            return "renewal outside the window or segment in expand/nurture"
        return f"renewal outside the window or cs >= {self.cs_rearm:g}"


RuleConfig = (
    ExpansionReady
    | UpsellIntent
    | PricingInterest
    | CrossSellClick
    | SeatPressure
    | RenewalWindow
    | UsageDrop
    | Inactivity
    | Detractor
    | HealthDrop
    | RenewalAtRisk
)


class Rules(BaseModel):
    """One field per rule, in catalogue order (the order `describe()` and the engine use)."""

    model_config = ConfigDict(extra="forbid")

    expansion_ready: ExpansionReady
    upsell_intent: UpsellIntent
    pricing_interest: PricingInterest
    cross_sell_click: CrossSellClick
    seat_pressure: SeatPressure
    renewal_window: RenewalWindow
    usage_drop: UsageDrop
    inactivity: Inactivity
    detractor: Detractor
    health_drop: HealthDrop
    renewal_at_risk: RenewalAtRisk


RULE_NAMES: tuple[str, ...] = tuple(Rules.model_fields)
# Each rule's kind is fixed by its model (`kind: Literal[...]`), whatever the config says.
RULE_KINDS: dict[str, str] = {
    name: get_args(spec.annotation.model_fields["kind"].annotation)[0]
    for name, spec in Rules.model_fields.items()
}


class RuleBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_cap_per_account: int | None = Field(ge=0)
    rules: Rules

    def items(self) -> Iterator[tuple[str, RuleConfig]]:
        """Every rule in catalogue order, enabled or not."""
        for name in RULE_NAMES:
            yield name, getattr(self.rules, name)

    def enabled(self) -> list[tuple[str, RuleConfig]]:
        return [(name, rule) for name, rule in self.items() if rule.enabled]

    def get(self, name: str) -> RuleConfig:
        return getattr(self.rules, name)

    def describe(self) -> list[dict[str, Any]]:
        """The rules in force, JSON-able, for GET /v1/rules."""
        common = {"kind", "enabled", "cooldown", "priority", "suggested_play"}
        out = []
        for name, rule in self.items():
            data = rule.model_dump(mode="json")
            out.append(
                {
                    "name": name,
                    **{key: data[key] for key in ("kind", "enabled", "priority", "cooldown")},
                    "condition": rule.condition(),
                    "rearm": rule.rearm(),
                    "auto_resolve_after": data.pop("auto_resolve_after", None),
                    "parameters": {k: v for k, v in data.items() if k not in common},
                    "suggested_play": rule.suggested_play,
                }
            )
        return out


def load_rules(config_dir: Path | None) -> RuleBook:
    """The packaged defaults, overlaid with `<config_dir>/rules.yaml` when that file exists."""
    data = _read(DEFAULT_RULES_PATH, "rules.yaml (packaged default)")
    source = FILE_NAME
    if config_dir is not None and (path := Path(config_dir) / FILE_NAME).is_file():
        source = str(path)
        data = _overlay(data, _read(path, source))
    return parse_rules(data, source=source)


def parse_rules(data: dict[str, Any], *, source: str = FILE_NAME) -> RuleBook:
    try:
        return RuleBook.model_validate(data)
    except ValidationError as exc:
        raise RulesConfigError(
            "; ".join(_describe_error(source, err) for err in exc.errors())
        ) from None


def _read(path: Path, source: str) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulesConfigError(f"{source}: cannot read {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RulesConfigError(f"{source}: must be a mapping at the top level")
    return data


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


_MESSAGES = {
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "missing": "is required",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def _describe_error(source: str, err: Any) -> str:
    # Union members and validator wrappers add loc parts that are not keys in the file.
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[", "float"))]
    kind = err["type"]
    if kind == "extra_forbidden":
        message = "unknown rule" if loc[:1] == ["rules"] and len(loc) == 2 else "unknown key"
        if message == "unknown rule":
            message += f" (known: {', '.join(RULE_NAMES)})"
    elif kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif kind == "value_error":
        message = str(err["msg"]).removeprefix("Value error, ")
    elif kind == "literal_error":
        message = f"must be {err['ctx']['expected']}"
    elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(kind, "<=")
        limit = next(iter(err["ctx"].values()))
        message = f"must be {sign} {limit}"
    else:
        message = str(err["msg"])
    return f"{source}: {'.'.join(loc) or '(top level)'}: {message}"
