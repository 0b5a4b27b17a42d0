"""The rule catalogue: every rule module, assembled into the model of `rules.yaml` and the
`RuleBook` the engine runs.

A rule is found by its name in kizashi.contracts.rules: the module of the same name in this
package, whose `RULE` is its config class. The contract fixes the order and the kind; the
module must agree with it, which is checked here, once, at import.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model

from kizashi.contracts.outcomes import DEFAULT_OUTCOME_WINDOW
from kizashi.contracts.rules import RULE_KINDS, RULE_NAMES
from kizashi.runtime.yamlconfig import ConfigFile, ConfigFileError, Keys
from kizashi.triggers.rules.base import Duration, RuleConfig

_SHARED_MODULES = {"base", "catalogue"}


def _rule_classes() -> dict[str, type[RuleConfig]]:
    classes = {name: import_module(f"{__package__}.{name}").RULE for name in RULE_NAMES}
    for name, cls in classes.items():
        kind = get_args(cls.model_fields["kind"].annotation)[0]
        if kind != RULE_KINDS[name]:
            raise ImportError(f"rule {name} is {kind}, kizashi.contracts.rules says otherwise")
    modules = {m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])}
    missing = sorted(modules - _SHARED_MODULES - set(RULE_NAMES))
    if missing:
        raise ImportError(f"rule modules without an entry in kizashi.contracts.rules: {missing}")
    return classes


RULE_CLASSES: dict[str, type[RuleConfig]] = _rule_classes()
# The rules whose condition moves with the clock alone; the periodic sweep evaluates these.
SWEEP_RULES: frozenset[str] = frozenset(n for n, cls in RULE_CLASSES.items() if cls.SWEPT)

# One field per rule, in catalogue order (the order `describe()` and the engine use).
Rules: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Rules",
    __config__=ConfigDict(extra="forbid"),
    **{name: (cls, ...) for name, cls in RULE_CLASSES.items()},
)


class Backfill(BaseModel):
    """History arriving (rules.yaml `backfill`; docs/signals.md#history-arriving)."""

    model_config = ConfigDict(extra="forbid")

    # A change whose newest event is older than this (against the time it was scored) is
    # history arriving: the clock-relative usage rules hold their state on it.
    older_than: Duration = timedelta(days=1)
    # Once an account's history has been quiet this long, the sweep judges those rules on
    # all of it.
    settle: Duration = timedelta(minutes=1)

    def arriving(self, newest_event_at: datetime | None, now: datetime) -> bool:
        return newest_event_at is not None and now - newest_event_at > self.older_than


class RecycleNoBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Without the account's fiscal year end, `no_budget` returns this many months after the
    # resolution.
    fallback_months: int = Field(default=12, ge=1, le=36)


class RecycleNoNeed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # `no_need` returns once OP is this many points above the OP at the resolution.
    op_rise: float = Field(default=10.0, gt=0, le=100)


class RecycleNotContacted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Who a `not_contacted` account goes back to (an email); null: the owner it had.
    reassign_to: str | None = Field(default=None, min_length=3, max_length=320, pattern="@")


class RecycleConfig(BaseModel):
    """rules.yaml's `recycle`: when a "not now" opportunity's account comes back
    (kizashi.triggers.recycle; docs/signals.md, "Recycle")."""

    model_config = ConfigDict(extra="forbid")

    suggested_play: str = Field(
        default="Pick the conversation up where it stopped: the reason it was parked is below.",
        min_length=1,
    )
    no_budget: RecycleNoBudget = RecycleNoBudget()
    no_need: RecycleNoNeed = RecycleNoNeed()
    not_contacted: RecycleNotContacted = RecycleNotContacted()


class RuleBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_cap_per_account: int | None = Field(ge=0)
    # How long after a signal an outcome still counts for it (won, confirmed, averted).
    outcome_window: Duration = DEFAULT_OUTCOME_WINDOW
    backfill: Backfill = Field(default_factory=Backfill)
    rules: Rules  # type: ignore[valid-type]
    # The recycle list's return rules (issue #21).
    recycle: RecycleConfig = RecycleConfig()

    def items(self) -> Iterator[tuple[str, RuleConfig]]:
        """Every rule in catalogue order, enabled or not."""
        for name in RULE_NAMES:
            yield name, getattr(self.rules, name)

    def enabled(self) -> list[tuple[str, RuleConfig]]:
        # Read on every change, twice: the fields straight from the model's __dict__, without
        # a generator and a getattr each.
        rules = self.rules.__dict__
        return [(name, rule) for name in RULE_NAMES if (rule := rules[name]).enabled]

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


# --------------------------------------------------------------------------- rules.yaml


class RulesConfigError(ConfigFileError):
    """rules.yaml is unreadable or invalid; the message names the rule and the key."""


def _unknown_rule(keys: Keys, error: dict[str, Any]) -> str | None:
    if error["type"] == "extra_forbidden" and len(keys) == 2 and keys[0] == "rules":
        return f"unknown rule (known: {', '.join(RULE_NAMES)})"
    return None


RULES_FILE = ConfigFile(
    name="rules.yaml",
    package="kizashi.triggers",
    model=RuleBook,
    error=RulesConfigError,
    # The operator writes only what they change.
    overlay=True,
    # rules.yaml says bounds the way its conditions do (">= 0.9"), and a kind or priority as
    # the choice itself; test_rules_config pins these and "cannot read" for broken YAML.
    phrases={
        "not_yaml": "cannot read: {detail}",
        "ge": "must be >= {bound:g}",
        "gt": "must be > {bound:g}",
        "le": "must be <= {bound:g}",
        "lt": "must be < {bound:g}",
        "literal": "must be {expected}",
    },
    reword=_unknown_rule,
)
DEFAULT_RULES_PATH = RULES_FILE.default_path()


def load_rules_config(config_dir: Path | None) -> RuleBook:
    """The packaged defaults, overlaid with `<config_dir>/rules.yaml` when that file exists."""
    return RULES_FILE.load(config_dir)


def parse_rules_config(data: dict[str, Any], *, source: str = RULES_FILE.name) -> RuleBook:
    """A rules.yaml already read as a mapping (the whole catalogue), validated."""
    return RULES_FILE.validate(data, source)


def read_default_rules() -> dict[str, Any]:
    """The packaged rules.yaml as a mapping, to lay changes over (tests, backtest)."""
    return RULES_FILE.read_mapping(DEFAULT_RULES_PATH, f"{RULES_FILE.name} (packaged default)")
