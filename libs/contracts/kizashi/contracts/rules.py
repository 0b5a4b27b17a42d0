"""The rule catalogue as the other services see it: each rule's name, its signal kind and the
words a message uses for it. The rules' code lives in kizashi.triggers.rules; this is what the
notifier (and anyone reading signals) may rely on without importing triggers.

Adding a rule means one entry here, next to its module in triggers and its rules.yaml entry.
"""

from typing import Literal, NamedTuple

from kizashi.contracts.resolutions import RECYCLE_RULE, RECYCLE_WORDS

RuleKind = Literal["opportunity", "churn_risk"]


class RuleName(NamedTuple):
    kind: RuleKind
    # What a rep reads for the rule in a message ("ready to expand", "usage drop").
    words: str


# In catalogue order: the order GET /v1/rules lists them and the engine breaks ties in.
RULES: dict[str, RuleName] = {
    "expansion_ready": RuleName("opportunity", "ready to expand"),
    "upsell_intent": RuleName("opportunity", "upsell intent"),
    "pricing_interest": RuleName("opportunity", "pricing interest"),
    "cross_sell_click": RuleName("opportunity", "cross-sell clicks"),
    "seat_pressure": RuleName("opportunity", "seat pressure"),
    "renewal_window": RuleName("opportunity", "renewal window"),
    # From reps' observations (issue #18).
    "new_decision_maker": RuleName("opportunity", "new decision maker"),
    "competitor_trouble": RuleName("opportunity", "competitor trouble"),
    "customer_pain": RuleName("opportunity", "customer pain"),
    "relocation_or_policy_change": RuleName("opportunity", "relocation or policy change"),
    "renewal_timing": RuleName("opportunity", "renewal date heard"),
    # From support tickets and purchases (issue #21).
    "support_surge": RuleName("opportunity", "support surge"),
    "fiscal_year_end": RuleName("opportunity", "fiscal year end ahead"),
    "usage_drop": RuleName("churn_risk", "usage drop"),
    "inactivity": RuleName("churn_risk", "inactivity"),
    "detractor": RuleName("churn_risk", "detractor"),
    "health_drop": RuleName("churn_risk", "health drop"),
    "renewal_at_risk": RuleName("churn_risk", "renewal at risk"),
    "key_person_left": RuleName("churn_risk", "key person left"),
}
RULE_NAMES: tuple[str, ...] = tuple(RULES)
RULE_KINDS: dict[str, RuleKind] = {name: rule.kind for name, rule in RULES.items()}
# Unknown rules (say, from a newer triggers) read as their id in words: see notifier.render.
RULE_WORDS: dict[str, str] = {name: rule.words for name, rule in RULES.items()}
# Not a catalogue rule: the opportunity a recycled account comes back as (issue #21).
RULE_WORDS[RECYCLE_RULE] = RECYCLE_WORDS
