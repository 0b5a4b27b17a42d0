"""The shape of `routing.yaml`: pydantic models that validate the file as written, before
kizashi.notifier.routing turns it into the tree it routes with, and the file's entry in the
shared config loader (kizashi.runtime.yamlconfig)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from kizashi.contracts.budget import DEFAULT_DAILY_BUDGET, DEFAULT_RESERVE
from kizashi.notifier.playbooks import CustomerEmailsConfig
from kizashi.runtime.yamlconfig import ConfigFile, ConfigFileError, Keys

# This one variable is read through settings (which may come from a .env file), not os.environ.
SLACK_WEBHOOK_ENV = "KIZASHI_SLACK_WEBHOOK_URL"
_INTERVAL = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class RoutingConfigError(ConfigFileError):
    """routing.yaml is unreadable or invalid; the message names the route and the key."""


# --- file models ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return url


# A daily budget of immediate alerts per owner: a count, or "unlimited" (kizashi.contracts.budget).
BudgetLimit = Annotated[int, Field(ge=0)] | Literal["unlimited"]


class SlackReceiverConfig(_Strict):
    name: str = Field(min_length=1)
    type: Literal["slack"]
    daily_budget: BudgetLimit | None = None
    webhook_url: str | None = None
    webhook_url_env: str | None = None
    # Owner (email or Slack handle, as in the account's facts) -> that owner's own webhook.
    by_owner: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> SlackReceiverConfig:
        for url in (self.webhook_url, *self.by_owner.values()):
            if url is not None:
                _check_url(url)
        if self.webhook_url and self.webhook_url_env:
            raise ValueError("give webhook_url or webhook_url_env, not both")
        if not (self.webhook_url or self.webhook_url_env or self.by_owner):
            raise ValueError("needs webhook_url, webhook_url_env or by_owner")
        return self


# The name of an environment variable (a webhook's URL and secret are read from one).
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class WebhookReceiverConfig(_Strict):
    """POSTs each signal as signed JSON (kizashi.notifier.webhook). The URL and the secret
    are named here, by environment variable, and never written here nor taken from signals."""

    name: str = Field(min_length=1)
    type: Literal["webhook"]
    url_env: EnvName
    secret_env: EnvName


Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]


class EmailReceiverConfig(_Strict):
    name: str = Field(min_length=1)
    type: Literal["email"]
    daily_budget: BudgetLimit | None = None
    to: Literal["account_owner"] | Annotated[list[Address], Field(min_length=1)]


ReceiverConfig = Annotated[
    SlackReceiverConfig | EmailReceiverConfig | WebhookReceiverConfig,
    Field(discriminator="type"),
]
MatchValue = str | list[str]


def _phase_text(value: Any) -> Any:
    """Phases are numbers (0-4 by default): `phase: 3` and `phase: [3, 4]` read as text."""
    if isinstance(value, list):
        return [_phase_text(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# The account's relationship phase (phases.yaml): a number, a list, or "~regex" ("~[3-9]").
PhaseMatch = Annotated[MatchValue, BeforeValidator(_phase_text)]


class MatchConfig(_Strict):
    kind: MatchValue | None = None
    rule: MatchValue | None = None
    priority: MatchValue | None = None
    segment: MatchValue | None = None
    owner: MatchValue | None = None
    phase: PhaseMatch | None = None


class DigestConfig(_Strict):
    interval: str

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if not _INTERVAL.match(value) or parse_interval(value) <= timedelta(0):
            raise ValueError('must look like "30m", "12h" or "1d"')
        return value

    @property
    def period(self) -> timedelta:
        return parse_interval(self.interval)


def parse_interval(text: str) -> timedelta:
    number, unit = text[:-1], text[-1]
    return timedelta(**{_UNITS[unit]: int(number)})


class RouteConfig(_Strict):
    name: str | None = None
    match: MatchConfig = Field(default_factory=MatchConfig)
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    digest: DigestConfig | None = None


class DefaultRouteConfig(_Strict):
    receivers: list[str] = Field(min_length=1)
    digest: DigestConfig | None = None


class BudgetConfig(_Strict):
    """Immediate alerts per owner per UTC day, per receiver; the rest wait for a digest."""

    daily: BudgetLimit = DEFAULT_DAILY_BUDGET
    # The last `reserve` of the day's slots go only to an alert that tops the day's ranks.
    reserve: int = Field(default=DEFAULT_RESERVE, ge=0)
    # Where deferred alerts go: the owner's digest of this interval (00:00 UTC for 1d).
    digest: DigestConfig = Field(default_factory=lambda: DigestConfig(interval="1d"))
    # An owner's own budget (owner_email or owner_slack), above any receiver's.
    by_owner: dict[str, BudgetLimit] = Field(default_factory=dict)


class RoutingFile(_Strict):
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    default: DefaultRouteConfig
    # Customer playbooks: emails to the customer's contact instead of the rep's alert
    # (kizashi.notifier.playbooks; every one off unless enabled).
    customer_emails: CustomerEmailsConfig = Field(default_factory=CustomerEmailsConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)


# --- the file ------------------------------------------------------------------------------


def _where(keys: Keys, raw: Any) -> str:
    """An error's place as a person finds it in the file: routes and receivers are lists, so
    they are named by position and name ("route #2 ('vip')"), not by bare index."""
    if len(keys) >= 2 and keys[0] in ("routes", "receivers") and isinstance(keys[1], int):
        section, index = str(keys[0]), keys[1]
        items = raw.get(section) if isinstance(raw, dict) else None
        item = items[index] if isinstance(items, list) and index < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        name = name or (f"route-{index}" if section == "routes" else "?")
        key = ".".join(str(p) for p in keys[2:]) or "(whole entry)"
        return f"{section[:-1]} #{index} ({name!r}): {key}"
    if len(keys) > 1 and keys[0] == "default":
        return f"route default: {'.'.join(str(p) for p in keys[1:])}"
    return ".".join(str(p) for p in keys)


ROUTING_FILE = ConfigFile(
    name="routing.yaml",
    package="kizashi.notifier",
    model=RoutingFile,
    error=RoutingConfigError,
    # test_notifier_routing pins "cannot read" for a file that is not YAML.
    phrases={"not_yaml": "cannot read: {detail}"},
    # The receiver union's discriminator values appear in error locations.
    union_tags=frozenset({"slack", "email", "webhook"}),
    name_of=_where,
)
