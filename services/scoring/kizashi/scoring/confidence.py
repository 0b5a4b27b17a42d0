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


def index_confidence(
    parts: dict[str, Part],
    weights: dict[str, float],
    features: Features,
    config: ScoringConfig,
    now: float,
    *,
    explain: bool = True,
) -> tuple[float, list[str]]:
    """The index's confidence (rounded to 3 places) and, with `explain`, what would raise it,
    the heaviest missing weight first (each hint once). Runs for every score, past points
    of score history included: no hint is built without `explain`."""
    days = features.get("usage_history_days") or 0.0
    target = config.confidence.usage_history_days
    history = days / target if days < target else 1.0
    half_life_s = config.surveys.half_life_days * DAY_S
    counted = covered = 0.0
    missing: list[tuple[float, str]] | None = [] if explain else None
    for name, (raw, norm, _) in parts.items():
        if norm is None:
            continue  # not counted at all (an observed part with nothing logged)
        weight = weights[name]
        counted += weight
        hint = None
        if raw is None:
            share = 0.0
            if missing is not None:
                hint = _ASK.get(name) or f"a value for {name.replace('_', ' ')}"
        elif name in _SURVEYS:
            at = features.get(f"{name}_at")
            share = 1.0 if at is None else 0.5 ** (max(0.0, now - at) / half_life_s)
            if missing is not None and share < 0.9 and at is not None:
                age_d = (now - at) / DAY_S
                hint = f"a newer {_SURVEY_WORDS[name]} answer (the latest is {age_d:.0f} days old)"
        elif name in _USAGE:
            share = history
            if missing is not None and history < 1.0:
                hint = f"more usage history ({days:.0f} of {target:.0f} days)"
            if name == "usage_health" and not features.get("seats"):
                share *= 0.5
                if missing is not None and hint is None:
                    hint = "the seats bought (usage health's target)"
        else:
            share = 1.0
        covered += weight * share
        if hint is not None:
            missing.append((weight * (1.0 - share), hint))  # type: ignore[union-attr]
    value = round(covered / counted, 3) if counted else 0.0
    if not missing:
        return value, []
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
