"""Time for the time-driven rules: the features that move with the clock alone, recomputed
for `now`, and when an account is next worth sweeping. Pure, no I/O. Each rule says when the
clock alone can move its own condition (its `sweep_edges`); this module adds what is common to
all: cooldowns running out, the daily cap's new day and auto-resolution.

An account whose time-driven rules cannot change before its next scores.changed gets no
sweep time at all, so the sweep's cost follows the accounts that can fire, not the idle ones.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kizashi.contracts.decay import DAY_S, MEAN_LIFE_7D_S, MEAN_LIFE_28D_S
from kizashi.contracts.fiscal import days_to_fiscal_year_end
from kizashi.contracts.scores import ObservationFact
from kizashi.triggers.engine import FRESH_STATE, RuleState, rule_option
from kizashi.triggers.rules import SWEEP_RULES, RuleBook, RuleConfig, SweepContext
from kizashi.triggers.rules.base import PAST_EDGE, midnight


def features_now(latest: dict[str, Any], now: datetime) -> dict[str, float | None]:
    """The latest scores.changed's features, with the clock-driven ones moved to `now`.

    Decayed usage counters and the usage trend decay exactly (no event means no new usage);
    days since usage, to renewal and to the fiscal year end are recounted. Window counts
    (visits, clicks, tickets) are left as they were: no time-driven rule reads them.
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
    fiscal = features.get("fiscal_year_end_month")
    if fiscal is not None:
        features["days_to_fiscal_year_end"] = days_to_fiscal_year_end(fiscal, now)
    return features


def observed_facts(latest: dict[str, Any]) -> tuple[ObservationFact, ...]:
    """The observations the latest change carried (none for most accounts)."""
    return tuple(ObservationFact.model_validate(o) for o in latest.get("observations") or ())


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
    history_arriving: bool = False,
) -> datetime | None:
    """The earliest time the clock alone can make a time-driven rule fire, re-arm or clear,
    let a blocked firing through (cooldown over, a new day under the cap) or auto-resolve a
    churn-risk signal. None when nothing can happen before the next scores.changed.

    `history_arriving`: the change was history arriving, on which the rules that measure
    usage against the clock held their state; they are judged once it has settled."""
    if latest is None:
        return None
    clock = SweepContext(
        features_now(latest, now), renewal_date(latest), now, observed_facts(latest)
    )
    candidates: list[datetime] = []
    for name, cfg in rules.enabled():
        state = states.get(name) or FRESH_STATE
        after = rule_option(cfg, "auto_resolve_after")
        if after is not None and state.last_fired_at and state.cleared_since:
            candidates.append(state.cleared_since + after)
        if name not in SWEEP_RULES:
            continue
        used = clock.features.get("last_usage_at") is not None
        if history_arriving and cfg.HELD_WHILE_HISTORY_ARRIVES and used:
            candidates.append(now + rules.backfill.settle)
        if state.armed and state.condition_since is not None:
            # On and armed, yet it did not fire: held by the cooldown or today's cap.
            candidates.append(_unblocked_at(cfg, state, fired_today, rules, now))
        candidates.extend(cfg.sweep_edges(clock))
    future = [moment for moment in candidates if moment > now]
    return min(future) if future else None


def _unblocked_at(
    cfg: RuleConfig, state: RuleState, fired_today: int, rules: RuleBook, now: datetime
) -> datetime:
    if state.last_fired_at is not None and now - state.last_fired_at < cfg.cooldown:
        return state.last_fired_at + cfg.cooldown
    cap = rules.daily_cap_per_account
    if cap is not None and fired_today >= cap:
        return midnight(now.astimezone(UTC).date() + timedelta(days=1))
    return now + PAST_EDGE


def _parse(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
