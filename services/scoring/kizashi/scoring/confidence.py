"""How much evidence a score stands on (issue #19, item 4): a confidence from 0 to 1 for CS and
for OP, and what would raise it. Pure; no I/O.

Each component of an index covers its weight by how much is known behind it:
- a component on its neutral default (no answer, seats or ARR unknown, …) covers nothing;
- a survey answer covers less as it ages: half its weight after `surveys.half_life_days`
  (the same half-life that pulls the answer back to neutral), so the confidence falls as
  evidence ages;
- a usage component covers the share of `confidence.usage_history_days` the account's usage
  history spans (a week of usage is a week's evidence), and usage health only half while the
  seats, and so its target, are unknown;
- an observed component (a rep's observation) counts only while it is logged, like its
  points; CRM facts and activity counts (visits, clicks) cover their whole weight.
The index's confidence is the covered weight over the weight counted; the score's is the
lower of the two (the segment reads both). Below `confidence.min_confidence` the segment is
`insufficient_data`."""

from kizashi.contracts.decay import DAY_S
from kizashi.scoring.config import ScoringConfig

# (raw value, normalised 0..1 or None for "not counted", sentence), as indices.Part.
Part = tuple[float | None, float | None, str]
Features = dict[str, float | None]

_SURVEYS = {"nps", "csat", "upsell_intent", "referral_intent"}
_USAGE = {
    "usage_health",
    "usage_trend",
    "active_days",
    "feature_breadth",
    "seat_adoption",
    "seat_pressure",
    "usage_growth",
}
_SURVEY_WORDS = {
    "nps": "NPS",
    "csat": "CSAT",
    "upsell_intent": "upsell-intent",
    "referral_intent": "referral-intent",
}
# What would cover a component that covers nothing, in a rep's words.
_ASK = {
    "nps": "an NPS answer",
    "csat": "a CSAT answer",
    "upsell_intent": "an upsell-intent answer",
    "referral_intent": "a referral-intent answer",
    "usage_trend": "a longer usage history (the trend needs a baseline)",
    "usage_growth": "a longer usage history (growth needs a baseline)",
    "seat_adoption": "the seats bought (account_update seats)",
    "seat_pressure": "the seats bought (account_update seats)",
    "size_fit": "the ARR or headcount (account_update arr, employees)",
    "decision_maker": "the decision makers (account_update decision_makers)",
    "plan_fit": "a plan in scoring.yaml's plan table",
    "renewal_timing": "the renewal date (account_update renewal_date)",
}


def coverage(
    name: str, part: Part, features: Features, config: ScoringConfig, now: float
) -> tuple[float, str | None]:
    """(0..1 of the component's weight covered, what would raise it or None)."""
    raw, norm, _ = part
    if norm is None:
        return 0.0, None  # not counted at all (an observed part with nothing logged)
    if name in _SURVEYS:
        at = features.get(f"{name}_at")
        if raw is None:
            return 0.0, _ASK[name]
        if at is None:
            return 1.0, None
        age_d = max(0.0, now - at) / DAY_S
        covered = 0.5 ** (age_d / config.surveys.half_life_days)
        if covered >= 0.9:
            return covered, None
        return covered, f"a newer {_SURVEY_WORDS[name]} answer (the latest is {age_d:.0f} days old)"
    if raw is None:
        return 0.0, _ASK.get(name, f"a value for {name.replace('_', ' ')}")
    if name in _USAGE:
        days = features.get("usage_history_days") or 0.0
        target = config.confidence.usage_history_days
        covered = min(1.0, days / target)
        hint = f"more usage history ({days:.0f} of {target:.0f} days)" if covered < 1.0 else None
        if name == "usage_health" and not features.get("seats"):
            return covered * 0.5, hint or "the seats bought (usage health's target)"
        return covered, hint
    return 1.0, None


def index_confidence(
    parts: dict[str, Part],
    weights: dict[str, float],
    features: Features,
    config: ScoringConfig,
    now: float,
) -> tuple[float, list[str]]:
    """The index's confidence (rounded to 3 places) and what would raise it, the heaviest
    missing weight first (each hint once)."""
    counted = covered = 0.0
    missing: list[tuple[float, str]] = []
    for name, part in parts.items():
        if part[1] is None:
            continue
        weight = weights[name]
        share, hint = coverage(name, part, features, config, now)
        counted += weight
        covered += weight * share
        if hint is not None:
            missing.append((weight * (1.0 - share), hint))
    value = round(covered / counted, 3) if counted else 0.0
    hints: list[str] = []
    for _, hint in sorted(missing, key=lambda item: -item[0]):
        if hint not in hints:
            hints.append(hint)
    return value, hints


def explanation(value: float, hints: list[str], minimum: float) -> str:
    said = f"Confidence {value:.2f}"
    if value < minimum:
        said += f", below {minimum:.2f}: too little evidence for a segment"
    if not hints:
        return said + "; nothing missing"
    return said + "; it would rise with " + "; ".join(hints[:4])
