"""The trigger rules: one module per rule (its config, how it reads an account, its headline
and, for clock-driven rules, when the sweep should look again), `base` for what they share
and `catalogue` for the RuleBook that assembles them from `rules.yaml`.

Adding a rule: a module here named after it, its entry in kizashi.contracts.rules and its
block in defaults/rules.yaml (docs/signals.md, "Adding a rule").
"""

from kizashi.contracts.rules import RULE_KINDS, RULE_NAMES
from kizashi.triggers.rules.base import (
    Context,
    Duration,
    Reading,
    RuleConfig,
    SweepContext,
    format_duration,
    parse_duration,
)
from kizashi.triggers.rules.catalogue import (
    DEFAULT_RULES_PATH,
    RULE_CLASSES,
    RULES_FILE,
    SWEEP_RULES,
    RuleBook,
    Rules,
    RulesConfigError,
    load_rules_config,
    parse_rules_config,
    read_default_rules,
)

__all__ = [
    "DEFAULT_RULES_PATH",
    "RULES_FILE",
    "RULE_CLASSES",
    "RULE_KINDS",
    "RULE_NAMES",
    "SWEEP_RULES",
    "Context",
    "Duration",
    "Reading",
    "RuleBook",
    "RuleConfig",
    "Rules",
    "RulesConfigError",
    "SweepContext",
    "format_duration",
    "load_rules_config",
    "parse_duration",
    "parse_rules_config",
    "read_default_rules",
]
