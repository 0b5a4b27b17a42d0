"""A signal's headline: what happened, with its key figure, in a few words for an email
subject or a Slack header ("upsell intent 9/10", "no usage for 21 days")."""

import re

from kizashi.contracts.scores import ScoreSnapshot

_ON_DATE = re.compile(r" on \d{4}-\d{2}-\d{2}")


def _whole(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def headline(
    rule: str,
    value: float | None,
    reasons: list[str],
    features: dict[str, float | None],
    scores: ScoreSnapshot,
) -> str:
    """`value` is what the rule measured (its reading); the features fill in the rest."""
    days_to_renewal = _whole(features.get("days_to_renewal"))
    match rule:
        case "expansion_ready":
            return f"ready to expand (CS {scores.cs:.0f}, OP {scores.op:.0f})"
        case "upsell_intent":
            return f"upsell intent {_whole(value)}/10"
        case "pricing_interest":
            return f"{_whole(value)} pricing visits in 7 days"
        case "cross_sell_click":
            return f"{_whole(value)} add-on clicks in 14 days"
        case "seat_pressure":
            active, seats = features.get("active_users_28d"), features.get("seats")
            return f"{_whole(active)} of {_whole(seats)} seats in use"
        case "renewal_window":
            return f"renewal in {days_to_renewal} days"
        case "renewal_at_risk":
            return f"renewal in {days_to_renewal} days with CS {scores.cs:.0f}"
        case "usage_drop":
            share = None if value is None else int(value * 100)
            return f"usage down to {_whole(share)}% of its baseline"
        case "inactivity":
            return f"no usage for {_whole(value)} days"
        case "health_drop":
            return f"CS down {_whole(value)} points in 14 days"
        case "detractor" if reasons:
            return _ON_DATE.sub("", reasons[0])  # "NPS 2 (was 8)"
    return rule.replace("_", " ")
