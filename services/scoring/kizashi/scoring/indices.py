"""CS and OP indices, segment and priority, each score with a breakdown a rep can read.

Pure functions of the features (see features.py) and scoring.yaml; no I/O.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.decay import DAY_S
from kizashi.contracts.scores import Index, Priority, ScoreComponent, ScoreSnapshot
from kizashi.runtime.trusted import trusted
from kizashi.scoring.confidence import explanation, index_confidence
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.input_parts import cs_parts as input_cs_parts
from kizashi.scoring.input_parts import op_parts as input_op_parts
from kizashi.scoring.observations import NOTHING_OBSERVED, Observed
from kizashi.scoring.observations import cs_parts as observed_cs_parts
from kizashi.scoring.observations import op_parts as observed_op_parts
from kizashi.scoring.segments import SegmentHold, segment_of

__all__ = ["score", "segment_of", "priority_of", "meaningful_change", "survey_norm"]

Features = dict[str, float | None]
# The breakdown line of each index that gives its confidence (weight 0, no points).
CONFIDENCE = "confidence"
# (raw value, normalised 0..1 or None for "not counted", sentence)
Part = tuple[float | None, float | None, str]


class BreakdownLine(dict):
    """One line of a breakdown: a `ScoreComponent` as JSON data, with attribute access.

    A score has seventeen lines and the consumer makes thousands of scores a second, so lines are
    made as plain dicts (no per-line validation; orjson writes a dict several times faster than
    a dataclass) and wrapped in this view only when read; `as_component()` gives the contract
    model.
    """

    __slots__ = ()

    index = property(lambda self: self["index"])
    component = property(lambda self: self["component"])
    raw = property(lambda self: self["raw"])
    weight = property(lambda self: self["weight"])
    points = property(lambda self: self["points"])
    explanation = property(lambda self: self["explanation"])

    def as_component(self) -> ScoreComponent:
        return ScoreComponent.model_validate(dict(self))


@dataclass(frozen=True, slots=True)
class ScoreResult:
    snapshot: ScoreSnapshot
    # The breakdown as plain JSON-ready dicts (what is stored and published).
    lines: list[dict]

    @property
    def breakdown(self) -> list[BreakdownLine]:
        """The same lines, with attribute access (line.component, line.points, …)."""
        return [BreakdownLine(line) for line in self.lines]


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _capped(value: float, target: float) -> float:
    return min(1.0, max(0.0, value / target))


def _aged(value: float, neutral: float, at: float | None, now: float, half_life_d: float) -> float:
    """Pull an answer's normalised value back towards neutral as it ages."""
    if at is None:
        return value
    age_d = max(0.0, now - at) / DAY_S
    return neutral + (value - neutral) * 0.5 ** (age_d / half_life_d)


def survey_norm(answer: str, value: float) -> float:
    """A survey answer on 0..1: NPS and intents are 0–10, CSAT is 1–5."""
    return (value - 1) / 4 if answer == "csat" else value / 10


def _answer_text(answer: str, value: float) -> str:
    if answer == "nps":
        band = "promoter" if value >= 9 else "passive" if value >= 7 else "detractor"
        return f"NPS {value:.0f} ({band})"
    if answer == "csat":
        return f"CSAT {value:.0f}/5"
    if answer == "upsell_intent":
        return f"Stated upsell intent {value:.0f}/10"
    return f"Referral intent {value:.0f}/10"


_NO_ANSWER = {
    "nps": "No NPS answer yet, counted as neutral",
    "csat": "No CSAT answer yet, counted as neutral",
    "upsell_intent": "No upsell-intent answer yet, counted as neutral",
    "referral_intent": "No referral-intent answer yet, counted as neutral",
}


def _survey(
    f: Features, answer: str, neutral: float, cfg: ScoringConfig, now: float, explain: bool
) -> Part:
    value, at = f[answer], f[f"{answer}_at"]
    if value is None:
        return None, neutral, _NO_ANSWER[answer]
    norm = _aged(survey_norm(answer, value), neutral, at, now, cfg.surveys.half_life_days)
    if not explain:
        return value, norm, ""
    when = f" on {_day(at)}" if at is not None else ""
    return value, norm, f"{_answer_text(answer, value)}{when}"


def _plural(count: float, noun: str) -> str:
    return f"{count:.0f} {noun}" + ("" if round(count) == 1 else "s")


def _cs_parts(f: Features, cfg: ScoringConfig, now: float, explain: bool) -> dict[str, Part]:
    n, miss = cfg.normalise, cfg.missing
    usage_7d, seats, trend = f["usage_7d"] or 0.0, f["seats"], f["usage_trend"]
    if seats:
        target = n.usage_target_per_seat_7d * seats
        target_text = f"a target of {_num(target)} for {seats:.0f} seats" if explain else ""
    else:
        target = n.usage_target_7d
        target_text = f"a target of {_num(target)} (seats unknown)" if explain else ""
    if f["last_usage_at"] is None:
        usage_text = "No product usage recorded yet"
    elif explain:
        usage_text = (
            f"About {_num(usage_7d)} uses of the product in the last 7 days, against {target_text}"
        )
    else:
        usage_text = ""
    if trend is None:
        trend_part: Part = (None, miss.usage_trend, "No usage baseline yet, counted as neutral")
    else:
        trend_part = (
            trend,
            n.usage_trend(trend),
            f"7-day usage rate is {trend * 100:.0f}% of the 28-day baseline" if explain else "",
        )
    active_14, active_28 = f["active_days_14d"] or 0.0, f["active_days_28d"] or 0.0
    breadth = f["distinct_features_28d"] or 0.0
    users, utilisation = f["active_users_28d"] or 0.0, f["seat_utilisation"]
    if utilisation is None:
        adoption: Part = (None, miss.seat_adoption, "Seats bought unknown, counted as neutral")
    else:
        adoption = (
            utilisation,
            _capped(utilisation, n.seat_adoption_target),
            f"{users:.0f} of {seats:.0f} seats active in the last 28 days "
            f"({utilisation * 100:.0f}%, target {n.seat_adoption_target * 100:.0f}%)"
            if explain
            else "",
        )
    return {
        "usage_health": (usage_7d, _capped(usage_7d, target), usage_text),
        "usage_trend": trend_part,
        "active_days": (
            active_14,
            _capped(active_14, n.active_days_target_14d),
            f"{_plural(active_14, 'active day')} in the last 14, {active_28:.0f} in the last 28"
            if explain
            else "",
        ),
        "feature_breadth": (
            breadth,
            _capped(breadth, n.features_target_28d),
            f"{_plural(breadth, 'distinct feature')} used in the last 28 days "
            f"(target {_num(n.features_target_28d)})"
            if explain
            else "",
        ),
        "seat_adoption": adoption,
        "nps": _survey(f, "nps", miss.nps, cfg, now, explain),
        "csat": _survey(f, "csat", miss.csat, cfg, now, explain),
    }


def _renewal_timing(days: float, cfg: ScoringConfig) -> float:
    window, ramp = cfg.normalise.renewal_window_days, cfg.normalise.renewal_ramp_days
    if days < 0:
        return 0.0
    if days < window.low:
        return max(0.0, 1 - (window.low - days) / ramp)
    if days > window.high:
        return max(0.0, 1 - (days - window.high) / ramp)
    return 1.0


def _op_parts(
    f: Features, facts: AccountFacts, cfg: ScoringConfig, now: float, explain: bool
) -> dict[str, Part]:
    n, miss = cfg.normalise, cfg.missing
    pricing, high_value = f["pricing_visits_7d"] or 0.0, f["high_value_visits_7d"] or 0.0
    clicks = f["cross_sell_clicks_14d"] or 0.0
    utilisation, trend, seats = f["seat_utilisation"], f["usage_trend"], f["seats"]
    if utilisation is None:
        pressure: Part = (None, miss.seat_pressure, "Seats bought unknown, counted as neutral")
    else:
        pressure = (
            utilisation,
            n.seat_pressure(utilisation),
            f"{f['active_users_28d'] or 0:.0f} of {seats:.0f} seats in use "
            f"({utilisation * 100:.0f}%)"
            if explain
            else "",
        )
    if trend is None:
        growth: Part = (None, miss.usage_growth, "No usage baseline yet, counted as neutral")
    else:
        growth = (
            trend,
            n.usage_growth(trend),
            f"7-day usage rate is {trend * 100:.0f}% of the 28-day baseline" if explain else "",
        )
    arr, employees = f["arr"], f["employees"]
    # (normalised, raw) of each size that is known; the better fit gives the points, and its
    # raw value is the one shown with them.
    sizes = [(n.arr(arr), arr)] if arr is not None else []
    if employees is not None:
        sizes.append((n.employees(employees), employees))
    if not sizes:
        size: Part = (None, miss.size_fit, "ARR and headcount unknown, counted as neutral")
    else:
        norm, raw = max(sizes, key=lambda known: known[0])  # ARR on a tie
        said = ""
        if explain:
            said = ", ".join(
                (
                    f"ARR {_num(arr)}" if arr is not None else "ARR unknown",
                    f"{employees:.0f} employees" if employees is not None else "headcount unknown",
                )
            )
        size = (raw, norm, said)
    engaged, named = f["decision_makers_engaged_28d"], len(set(facts.decision_makers or ()))
    if engaged is None:
        decision_maker: Part = (
            None,
            miss.decision_maker,
            "No decision makers named in the CRM, counted as neutral",
        )
    elif not explain:
        decision_maker = (engaged, 1.0 if engaged else 0.0, "")
    else:
        if named == 1:
            who = "The decision maker" + (" engaged" if engaged else " did not engage")
        elif engaged:
            who = f"{engaged:.0f} of the {named} decision makers engaged"
        else:
            who = f"None of the {named} decision makers engaged"
        decision_maker = (engaged, 1.0 if engaged else 0.0, f"{who} in the last 28 days")
    plan = facts.plan
    plan_room = None if plan is None else n.plans.get(plan.strip().lower())
    if plan_room is None:
        why = "unknown" if plan is None else f"'{plan}' is not in the plan table"
        plan_part: Part = (None, miss.plan_fit, f"Plan {why}, counted as neutral")
    else:
        plan_part = (
            plan_room,
            plan_room,
            f"On the '{plan}' plan ({plan_room * 100:.0f}% room)" if explain else "",
        )
    days = f["days_to_renewal"]
    window = n.renewal_window_days
    if days is None:
        timing: Part = (None, miss.renewal_timing, "Renewal date unknown, counted as neutral")
    else:
        timing = (
            days,
            _renewal_timing(days, cfg),
            f"Renewal in {days:.0f} days (on {facts.renewal_date}); "
            f"{window.low:.0f}–{window.high:.0f} days out is the time to offer"
            if explain
            else "",
        )
    return {
        "upsell_intent": _survey(f, "upsell_intent", miss.upsell_intent, cfg, now, explain),
        "referral_intent": _survey(f, "referral_intent", miss.referral_intent, cfg, now, explain),
        "pricing_interest": (
            high_value,
            _capped(high_value, n.high_value_visits_target_7d),
            f"{_plural(pricing, 'pricing visit')} and "
            f"{_plural(high_value - pricing, 'product-page visit')} in the last 7 days"
            if explain
            else "",
        ),
        "cross_sell": (
            clicks,
            _capped(clicks, n.cross_sell_clicks_target_14d),
            f"{_plural(clicks, 'click')} on cross-sell, upsell or new-product links "
            "in the last 14 days"
            if explain
            else "",
        ),
        "seat_pressure": pressure,
        "usage_growth": growth,
        "size_fit": size,
        "decision_maker": decision_maker,
        "plan_fit": plan_part,
        "renewal_timing": timing,
    }


def _index(
    index: Index, parts: dict[str, Part], weights: dict[str, float], out: list[dict] | None
) -> float:
    """The index from its parts; with `out`, one breakdown line per part appended to it. A
    part normalised to None (an observed part with nothing logged) is left out, its weight
    and its line too: an account no rep wrote about has the breakdown (and the
    `scores.changed` size) it had before observations."""
    scale = 100.0 / sum(weights[name] for name, part in parts.items() if part[1] is not None)
    score = 0.0
    for name, (raw, norm, sentence) in parts.items():
        if norm is None:
            continue
        weight = weights[name]
        points = scale * weight * norm
        score += points
        if out is None:
            continue
        out.append(
            {
                "index": index,
                "component": name,
                "raw": None if raw is None else round(float(raw), 4),
                "weight": weight,
                "points": round(points, 2),
                "explanation": sentence,
            }
        )
    return round(min(100.0, max(0.0, score)), 2)


def _confidence_line(index: Index, value: float, hints: list[str], minimum: float) -> dict:
    """The breakdown's last line of an index: its confidence (raw), no weight, no points, and
    what would raise it."""
    return {
        "index": index,
        "component": CONFIDENCE,
        "raw": value,
        "weight": 0.0,
        "points": 0.0,
        "explanation": explanation(value, hints, minimum),
    }


def priority_of(features: Features, cs: float, op: float, config: ScoringConfig) -> Priority:
    for rule in config.priority.rules:
        for name, cond in rule.when.items():
            value = cs if name == "cs" else op if name == "op" else features.get(name)
            if not cond.holds(value):
                break
        else:
            return rule.priority
    return config.priority.default


def score(
    features: Features,
    facts: AccountFacts,
    config: ScoringConfig,
    now: datetime,
    *,
    explain: bool = True,
    observed: Observed = NOTHING_OBSERVED,
    hold: SegmentHold | None = None,
) -> ScoreResult:
    """CS, OP, segment and priority, with one breakdown line per component. Without
    `explain` (the past points of score history), the same numbers and no breakdown: the
    sentences are most of the cost. `observed`: what reps logged (the phase and the newest
    observation of each kind, kizashi.scoring.observations). `hold`: the segment the account
    holds, stepped in place with these scores (kizashi.scoring.segments); without it, the
    plain cut-offs."""
    t = now.timestamp()
    lines: list[dict] = []
    out = lines if explain else None
    cs_parts = _cs_parts(features, config, t, explain)
    cs_parts.update(observed_cs_parts(observed, config, t, explain))
    cs_parts.update(input_cs_parts(features, config, explain))
    cs = _index("cs", cs_parts, config.cs.weights.by_name, out)
    cs_conf, cs_hints = index_confidence(
        cs_parts, config.cs.weights.by_name, features, config, t, explain=explain
    )
    minimum = config.confidence.min_confidence
    if out is not None:
        out.append(_confidence_line("cs", cs_conf, cs_hints, minimum))
    op_parts = _op_parts(features, facts, config, t, explain)
    op_parts.update(observed_op_parts(observed, config, t, explain))
    op_parts.update(input_op_parts(features, config, explain))
    op = _index("op", op_parts, config.op.weights.by_name, out)
    op_conf, op_hints = index_confidence(
        op_parts, config.op.weights.by_name, features, config, t, explain=explain
    )
    if out is not None:
        out.append(_confidence_line("op", op_conf, op_hints, minimum))
    confidence = min(cs_conf, op_conf)
    segment = segment_of(cs, op, config) if hold is None else hold.step(cs, op, now, config)
    # Valid by construction (indices clamped to 0–100, segment and priority from the validated
    # config): skip validation, which runs for every account of every batch.
    snapshot = trusted(
        ScoreSnapshot,
        {
            "cs": cs,
            "op": op,
            "segment": "insufficient_data" if confidence < minimum else segment,
            "priority": priority_of(features, cs, op, config),
            "confidence": confidence,
        },
    )
    return ScoreResult(snapshot=snapshot, lines=lines)


def meaningful_change(before: dict | None, after: ScoreSnapshot, config: ScoringConfig) -> bool:
    """Worth publishing: first score, a new segment or priority, or a move of min_points.
    `before` holds the scores last published (cs, op, segment, priority), so moves smaller
    than min_points add up until they reach it."""
    if before is None:
        return True
    if before["segment"] != after.segment or before["priority"] != after.priority:
        return True
    threshold = config.changes.min_points
    return abs(after.cs - before["cs"]) >= threshold or abs(after.op - before["op"]) >= threshold
