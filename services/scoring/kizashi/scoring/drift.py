"""When time alone can next move an account's scores (`scores.next_check_at`, read by the
sweep): decay, the edges of the day windows and the renewal calendar. Pure: no I/O."""

import math
from datetime import UTC, date, datetime

from kizashi.contracts.decay import DAY_S, MEAN_LIFE_7D_S, MEAN_LIFE_28D_S
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.features import SURVEY_ANSWERS, AccountState, utc_day
from kizashi.scoring.indices import survey_norm
from kizashi.scoring.purchases import next_edge as next_purchase_edge
from kizashi.scoring.support import next_edge as next_ticket_edge

# Below this a decayed usage counter is worth under a point of any index with default weights.
SETTLED_USAGE = 0.5


def _midnight(day: int) -> float:
    return day * DAY_S


def _usage_settled(state: AccountState, t: float, config: ScoringConfig) -> bool:
    """True when usage decay can no longer move a score: counters negligible, trend bottomed."""
    if not state.usage:
        return True
    ref, u7, u28 = state.usage
    dt = max(0.0, t - ref)
    u7 *= math.exp(-dt / MEAN_LIFE_7D_S)
    u28 *= math.exp(-dt / MEAN_LIFE_28D_S)
    if u7 >= SETTLED_USAGE or u28 >= SETTLED_USAGE:
        return False
    # In silence the trend only falls, so once it is under both ramps it stays at 0 points.
    trend = 4.0 * u7 / u28 if u28 > 0 else 0.0
    normalise = config.normalise
    return trend <= normalise.usage_trend.low and trend <= normalise.usage_growth.low


def _surveys_settled(state: AccountState, t: float, config: ScoringConfig) -> bool:
    """True when every answer's remaining pull from ageing is worth < half a meaningful move."""
    cs, op = config.cs.weights, config.op.weights
    full_points = {
        "nps": 100.0 * cs.nps / cs.total,
        "csat": 100.0 * cs.csat / cs.total,
        "upsell_intent": 100.0 * op.upsell_intent / op.total,
        "referral_intent": 100.0 * op.referral_intent / op.total,
    }
    for answer in SURVEY_ANSWERS:
        entries = state.surveys.get(answer)
        if not entries:
            continue
        at, _, value = entries[0]
        norm = survey_norm(answer, value)
        spread = abs(norm - getattr(config.missing, answer))
        points = full_points[answer]
        age_d = max(0.0, t - at) / DAY_S
        remaining = points * spread * 0.5 ** (age_d / config.surveys.half_life_days)
        if remaining >= config.changes.min_points / 2:
            return False
    return True


def next_drift_check(state: AccountState, now: datetime, config: ScoringConfig) -> datetime | None:
    """When time alone can next have moved this account's scores; None if it never will.

    Three clocks move scores without events: decay (usage counters, survey ageing), the edges
    of the day windows (UTC midnight, while any counted day is within 28 days; the exact day a
    ticket or purchase day enters or leaves one of its windows) and the renewal calendar
    (daily, while the renewal is within the timing ramps).
    """
    t = now.timestamp()
    today = utc_day(t)
    candidates: list[float] = []
    if not _usage_settled(state, t, config) or not _surveys_settled(state, t, config):
        candidates.append(t + config.sweep.recheck_hours * 3600.0)
    if state.max_day is not None and state.max_day >= today - 27:
        candidates.append(_midnight(today + 1))
    # A ticket or purchase day entering or leaving a window (7 … 730 days) moves features.
    for edge in (next_ticket_edge(state.sup, today), next_purchase_edge(state.buy, today)):
        if edge is not None:
            candidates.append(_midnight(edge))
    renewal = state.renewal_date()
    if renewal is not None:
        candidates.extend(_renewal_checks(renewal, today, config))
    if not candidates:
        return None
    return datetime.fromtimestamp(max(min(candidates), t), UTC)


def _renewal_checks(renewal: date, today: int, config: ScoringConfig) -> list[float]:
    window, ramp = config.normalise.renewal_window_days, config.normalise.renewal_ramp_days
    renewal_day = utc_day(
        datetime(renewal.year, renewal.month, renewal.day, tzinfo=UTC).timestamp()
    )
    days_left = renewal_day - today
    first_moving = renewal_day - math.ceil(window.high + ramp)
    if days_left > window.high + ramp:
        return [_midnight(first_moving)]
    if days_left >= max(0.0, window.low - ramp):
        return [_midnight(today + 1)]
    return []
