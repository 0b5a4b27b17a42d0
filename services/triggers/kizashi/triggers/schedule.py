"""Time for the time-driven rules: the features that move with the clock alone, recomputed
for `now`, and when an account is next worth sweeping. Pure, no I/O.

An account whose time-driven rules cannot change before its next scores.changed gets no
sweep time at all, so the sweep's cost follows the accounts that can fire, not the idle ones.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from kizashi.scoring.features import DAY_S, MEAN_LIFE_7D_S, MEAN_LIFE_28D_S
from kizashi.triggers import rules as r
from kizashi.triggers.engine import SWEEP_RULES, RuleState, rule_option
from kizashi.triggers.rules import RuleBook

# In silence the 7-day rate falls against the 28-day baseline at this rate (per second).
_TREND_DECAY = 1 / MEAN_LIFE_7D_S - 1 / MEAN_LIFE_28D_S
# A threshold is crossed strictly after the exact instant; sweep a moment later.
_PAST_EDGE = timedelta(seconds=1)


def features_now(latest: dict[str, Any], now: datetime) -> dict[str, float | None]:
    """The latest scores.changed's features, with the clock-driven ones moved to `now`.

    Decayed usage counters and the usage trend decay exactly (no event means no new usage);
    days since usage and days to renewal are recounted. Window counts (visits, clicks) are
    left as they were: no time-driven rule reads them.
    """
    features = dict(latest["features"])
    computed_at = _parse(latest["computed_at"])
    dt = (now - computed_at).total_seconds()
    if dt > 0:
        u7, u28 = features.get("usage_7d"), features.get("usage_28d")
        if u7 is not None and u28 is not None:
            u7 *= math.exp(-dt / MEAN_LIFE_7D_S)
            u28 *= math.exp(-dt / MEAN_LIFE_28D_S)
            features["usage_7d"], features["usage_28d"] = u7, u28
            features["usage_trend"] = (u7 / 7.0) / (u28 / 28.0) if u28 > 0 else None
    last = features.get("last_usage_at")
    if last is not None:
        features["days_since_usage"] = max(0.0, (now.timestamp() - last) / DAY_S)
    renewal = renewal_date(latest)
    if renewal is not None:
        features["days_to_renewal"] = float((renewal - now.astimezone(UTC).date()).days)
    return features


def renewal_date(latest: dict[str, Any]) -> date | None:
    value = (latest.get("account") or {}).get("renewal_date")
    return None if value is None else date.fromisoformat(value)


def next_sweep_at(
    *,
    latest: dict[str, Any] | None,
    states: dict[str, RuleState],
    fired_today: int,
    rules: RuleBook,
    now: datetime,
) -> datetime | None:
    """The earliest time the clock alone can make a time-driven rule fire, re-arm or clear,
    let a blocked firing through (cooldown over, a new day under the cap) or auto-resolve a
    churn-risk signal. None when nothing can happen before the next scores.changed."""
    if latest is None:
        return None
    features = features_now(latest, now)
    candidates: list[datetime] = []
    for name, cfg in rules.enabled():
        state = states.get(name) or RuleState()
        after = rule_option(cfg, "auto_resolve_after")
        if after is not None and state.last_fired_at and state.cleared_since:
            candidates.append(state.cleared_since + after)
        if name not in SWEEP_RULES:
            continue
        if state.armed and state.condition_since is not None:
            # On and armed, yet it did not fire: held by the cooldown or today's cap.
            candidates.append(_unblocked_at(cfg, state, fired_today, rules, now))
    inactivity = rules.get("inactivity")
    if inactivity.enabled:
        candidates.extend(_inactivity_edge(inactivity, features))
    usage_drop = rules.get("usage_drop")
    if usage_drop.enabled:
        candidates.extend(_usage_drop_edge(usage_drop, features, now))
    renewal = renewal_date(latest)
    if renewal is not None:
        candidates.extend(_renewal_edges(rules, renewal, now))
    future = [moment for moment in candidates if moment > now]
    return min(future) if future else None


def _unblocked_at(
    cfg: r.RuleConfig, state: RuleState, fired_today: int, rules: RuleBook, now: datetime
) -> datetime:
    if state.last_fired_at is not None and now - state.last_fired_at < cfg.cooldown:
        return state.last_fired_at + cfg.cooldown
    cap = rules.daily_cap_per_account
    if cap is not None and fired_today >= cap:
        return _midnight(now.astimezone(UTC).date() + timedelta(days=1))
    return now + _PAST_EDGE


def _inactivity_edge(cfg: r.Inactivity, features: dict[str, float | None]) -> list[datetime]:
    last = features.get("last_usage_at")
    if last is None:
        return []
    return [datetime.fromtimestamp(last + cfg.threshold * DAY_S, UTC)]


def _usage_drop_edge(
    cfg: r.UsageDrop, features: dict[str, float | None], now: datetime
) -> list[datetime]:
    """When, in silence, the trend falls under the threshold while the baseline still counts."""
    trend, u28 = features.get("usage_trend"), features.get("usage_28d")
    if trend is None or u28 is None or trend < cfg.threshold or u28 < cfg.min_usage_28d:
        return []
    fires_in = math.log(trend / cfg.threshold) / _TREND_DECAY
    baseline_gone_in = (
        math.inf if cfg.min_usage_28d <= 0 else math.log(u28 / cfg.min_usage_28d) * MEAN_LIFE_28D_S
    )
    if fires_in >= baseline_gone_in:
        return []
    return [now + timedelta(seconds=fires_in) + _PAST_EDGE]


def _renewal_edges(rules: RuleBook, renewal: date, now: datetime) -> list[datetime]:
    """The next UTC midnights at which days_to_renewal enters or leaves a renewal rule's window."""
    days = (renewal - now.astimezone(UTC).date()).days
    windows = []
    window, at_risk = rules.get("renewal_window"), rules.get("renewal_at_risk")
    if window.enabled:
        windows.append((window.min_days, window.max_days))
    if at_risk.enabled:
        windows.append((0.0, at_risk.within_days))
    edges = []
    for low, high in windows:
        if days > high:
            edges.append(renewal - timedelta(days=math.floor(high)))
        elif days >= low:
            edges.append(renewal - timedelta(days=math.ceil(low) - 1))
    return [_midnight(day) for day in edges]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _parse(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
