"""Evaluation of the rule catalogue for one account: pure and deterministic, no I/O.

Each rule reads the account's features and scores into a level: "on" (past the fire level),
"off" (past the re-arm level), "band" (in between: nothing changes, which is what makes
noise around a threshold harmless) or "unknown" (data missing: the state is kept as is).
A common state machine turns levels into firings with cooldown, hysteresis and the daily cap.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from kizashi.contracts.scores import ScoreSnapshot
from kizashi.triggers import rules as r
from kizashi.triggers.headlines import headline
from kizashi.triggers.rules import RuleBook

# The rules whose condition moves with the clock alone; the periodic sweep evaluates these.
SWEEP_RULES: frozenset[str] = frozenset(
    {"inactivity", "renewal_window", "renewal_at_risk", "usage_drop"}
)
# Fixed forever: changing it would change every signal id, and replays would alert twice.
SIGNAL_NAMESPACE = uuid.UUID("6b1f0c2e-4f7a-5d1e-9c3b-2a8e7d4f6a10")

_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
_HIGH_CS_SEGMENTS = ("expand", "nurture")

Level = Literal["on", "off", "band", "unknown"]


@dataclass
class RuleState:
    armed: bool = True
    episode: int = 0
    last_fired_at: datetime | None = None
    # When the condition last became true; for the survey rules (detractor, upsell_intent),
    # the time of the answer behind the current episode.
    condition_since: datetime | None = None
    cleared_since: datetime | None = None
    last_value: float | None = None

    def but(self, **changes: Any) -> RuleState:
        """A copy with `changes`: states are replaced, never changed in place. Every rule
        steps on every change, and dataclasses.replace re-reads the fields each time (4 µs,
        against under 1 µs here)."""
        if not _RULE_STATE_FIELDS.issuperset(changes):
            raise TypeError(f"RuleState has no {sorted(changes.keys() - _RULE_STATE_FIELDS)}")
        new = object.__new__(RuleState)
        new.__dict__.update(self.__dict__, **changes)
        return new


_RULE_STATE_FIELDS = frozenset(RuleState.__dataclass_fields__)


@dataclass(frozen=True)
class Firing:
    rule: str
    kind: Literal["opportunity", "churn_risk"]
    priority: Literal["high", "medium", "low"]
    episode: str
    signal_id: str
    reasons: list[str]
    suggested_play: str
    headline: str = ""


@dataclass(frozen=True)
class Evaluation:
    firings: list[Firing]
    states: dict[str, RuleState]
    cleared: list[str]
    suppressed: list[str]


def signal_id_for(account_id: str, rule: str, episode: str) -> str:
    return str(uuid.uuid5(SIGNAL_NAMESPACE, f"{account_id}\x1f{rule}\x1f{episode}"))


def evaluate(
    *,
    account_id: str,
    features: dict[str, float | None],
    scores: ScoreSnapshot,
    scores_before: ScoreSnapshot | None,
    cs_history: list[tuple[datetime, float]],
    states: dict[str, RuleState],
    fired_today: int,
    rules: RuleBook,
    now: datetime,
    only: set[str] | None = None,
) -> Evaluation:
    now = _aware(now)
    ctx = _Ctx(features, scores, scores_before, [(_aware(t), v) for t, v in cs_history], now)
    new_states: dict[str, RuleState] = {}
    candidates: list[tuple[tuple[int, int, int], str, r.RuleConfig, _Reading]] = []
    for order, (name, cfg) in enumerate(rules.enabled()):
        if only is not None and name not in only:
            continue
        reading = _READERS[name](cfg, ctx)
        state, ready = _step(cfg, reading, _aware_state(states.get(name)), now)
        new_states[name] = state
        if ready:
            rank = (_PRIORITY_RANK[_priority(cfg, scores)], cfg.kind != "churn_risk", order)
            candidates.append((rank, name, cfg, reading))

    # Under the cap the most urgent go first; the rest stay armed and fire on a later day.
    cap = rules.daily_cap_per_account
    room = len(candidates) if cap is None else max(0, cap - fired_today)
    firings: list[Firing] = []
    suppressed: list[str] = []
    for _, name, cfg, reading in sorted(candidates, key=lambda c: c[0]):
        if len(firings) >= room:
            suppressed.append(name)
            continue
        state = new_states[name]
        n = state.episode + 1
        episode = f"{name}:{_iso(reading.answered_at) if reading.answered_at else n}"
        new_states[name] = state.but(armed=False, episode=n, last_fired_at=now)
        firings.append(
            Firing(
                rule=name,
                kind=cfg.kind,
                priority=_priority(cfg, scores),
                episode=episode,
                signal_id=signal_id_for(account_id, name, episode),
                reasons=list(reading.reasons),
                suggested_play=cfg.suggested_play,
                headline=headline(name, reading.value, list(reading.reasons), ctx.features, scores),
            )
        )

    cleared = [n for n, st in new_states.items() if _cleared_long_enough(rules.get(n), st, now)]
    return Evaluation(firings=firings, states=new_states, cleared=cleared, suppressed=suppressed)


# --------------------------------------------------------------------------- state machine


@dataclass(frozen=True)
class _Reading:
    level: Level
    value: float | None = None
    reasons: tuple[str, ...] = ()
    # Survey rules: the answer that makes the condition true (a newer one = a new episode).
    answered_at: datetime | None = None
    # expansion_ready: crossed into the condition since the previous scores (forces re-arm).
    entered: bool = False


def _step(
    cfg: r.RuleConfig, reading: _Reading, state: RuleState, now: datetime
) -> tuple[RuleState, bool]:
    """The rule's new state (before any firing) and whether it is ready to fire."""
    if reading.level == "unknown":
        return state, False  # unchanged (states are never changed in place)
    if reading.level == "band":
        return state.but(last_value=reading.value), False
    if reading.level == "off":
        cleared = {"cleared_since": state.cleared_since or now, "last_value": reading.value}
        return state.but(armed=True, condition_since=None, **cleared), False

    armed, since = state.armed or reading.entered, state.condition_since or now
    if reading.answered_at is not None:
        since = state.condition_since
        if since is None or reading.answered_at > since:
            armed, since = True, reading.answered_at
    new = state.but(
        armed=armed, condition_since=since, cleared_since=None, last_value=reading.value
    )
    cooling = state.last_fired_at is not None and now - state.last_fired_at < cfg.cooldown
    max_age: timedelta | None = rule_option(cfg, "max_age")
    stale = bool(max_age and reading.answered_at and now - reading.answered_at > max_age)
    return new, armed and not cooling and not stale


def resolvable(states: dict[str, RuleState], rules: RuleBook, now: datetime) -> list[str]:
    """The churn-risk rules whose condition has been clear for their auto_resolve_after."""
    now = _aware(now)
    return [
        name
        for name, cfg in rules.enabled()
        if name in states and _cleared_long_enough(cfg, _aware_state(states[name]), now)
    ]


def _cleared_long_enough(cfg: r.RuleConfig, state: RuleState, now: datetime) -> bool:
    after = rule_option(cfg, "auto_resolve_after")
    return (
        cfg.kind == "churn_risk"
        and after is not None
        and state.last_fired_at is not None
        and state.cleared_since is not None
        and now - state.cleared_since >= after
    )


def rule_option(cfg: r.RuleConfig, name: str) -> Any:
    """A setting only some rules have, or None. A pydantic model keeps its fields in its
    __dict__; getattr on a missing one goes through BaseModel.__getattr__ and an exception
    (2.6 µs), for every rule on every change."""
    return cfg.__dict__.get(name)


def _priority(cfg: r.RuleConfig, scores: ScoreSnapshot) -> Literal["high", "medium", "low"]:
    return scores.priority if cfg.priority == "account" else cfg.priority


# --------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class _Ctx:
    features: dict[str, float | None]
    scores: ScoreSnapshot
    before: ScoreSnapshot | None
    cs_history: list[tuple[datetime, float]]
    now: datetime

    def f(self, name: str) -> float | None:
        value = self.features.get(name)
        return None if value is None else float(value)


def _hysteresis(value: float | None, cfg: Any) -> Level:
    if value is None:
        return "unknown"
    if cfg.RISING:
        return "on" if value >= cfg.threshold else "off" if value < cfg.rearm_at else "band"
    return "on" if value < cfg.threshold else "off" if value >= cfg.rearm_at else "band"


def _read_expansion_ready(cfg: r.ExpansionReady, ctx: _Ctx) -> _Reading:
    s, before = ctx.scores, ctx.before
    if s.segment != "expand":
        return _Reading("off", s.op)
    entered = before is not None and before.segment != "expand"
    now_txt = f"CS {_n(s.cs, 0)}, OP {_n(s.op, 0)}"
    reason = (
        f"Entered expand: {now_txt} (was {before.segment}: CS {_n(before.cs, 0)}, "
        f"OP {_n(before.op, 0)})"
        if entered and before is not None
        else f"In expand: {now_txt}"
    )
    return _Reading("on", s.op, (reason,), entered=entered)


def _read_upsell_intent(cfg: r.UpsellIntent, ctx: _Ctx) -> _Reading:
    value, at = ctx.f("upsell_intent"), ctx.f("upsell_intent_at")
    if value is None or at is None:
        return _Reading("unknown")
    if value < cfg.threshold:
        return _Reading("off", value)
    answered = _from_epoch(at)
    reasons = (
        f"Upsell intent {_n(value)}/10 in a survey on {answered:%Y-%m-%d}",
        f"OP {_n(ctx.scores.op, 0)}, CS {_n(ctx.scores.cs, 0)} ({ctx.scores.segment})",
    )
    return _Reading("on", value, reasons, answered_at=answered)


def _read_pricing_interest(cfg: r.PricingInterest, ctx: _Ctx) -> _Reading:
    visits, pricing = ctx.f("high_value_visits_7d"), ctx.f("pricing_visits_7d")
    value = visits if visits is not None else pricing
    level = _hysteresis(value, cfg)
    if level != "on" or value is None:
        return _Reading(level, value)
    if visits is None or pricing is None or visits == pricing:
        reason = f"{_n(value)} pricing visits in the last 7 days"
    else:
        reason = (
            f"{_n(visits)} pricing or product page visits in the last 7 days "
            f"({_n(pricing)} on pricing)"
        )
    return _Reading("on", value, (reason,))


def _read_cross_sell_click(cfg: r.CrossSellClick, ctx: _Ctx) -> _Reading:
    value = ctx.f("cross_sell_clicks_14d")
    level = _hysteresis(value, cfg)
    reasons = (f"{_n(value)} clicks on add-on or new-product links in the last 14 days",)
    return _Reading(level, value, reasons if level == "on" else ())


def _read_seat_pressure(cfg: r.SeatPressure, ctx: _Ctx) -> _Reading:
    value, users, seats = ctx.f("seat_utilisation"), ctx.f("active_users_28d"), ctx.f("seats")
    level = _hysteresis(value, cfg)
    if level != "on" or value is None:
        return _Reading(level, value)
    share = f"{value:.0%}"
    reason = (
        f"{_n(users)} active users on {_n(seats)} seats ({share} of seats)"
        if users is not None and seats is not None
        else f"{share} of seats in use"
    )
    return _Reading("on", value, (f"{reason} in 28 days",))


def _read_renewal_window(cfg: r.RenewalWindow, ctx: _Ctx) -> _Reading:
    days = ctx.f("days_to_renewal")
    if days is None or not cfg.min_days <= days <= cfg.max_days:
        return _Reading("off", days)
    s = ctx.scores
    if cfg.cs_threshold == "segment":
        high, why = s.segment in _HIGH_CS_SEGMENTS, f"segment {s.segment}"
    else:
        high, why = s.cs >= cfg.cs_threshold, f"healthy: at least {_n(cfg.cs_threshold)}"
    if not high:
        return _Reading("band", days)
    reasons = (_renewal_text(days, ctx.now), f"CS {_n(s.cs, 0)} ({why})")
    return _Reading("on", days, reasons)


def _read_usage_drop(cfg: r.UsageDrop, ctx: _Ctx) -> _Reading:
    trend, u7, u28 = ctx.f("usage_trend"), ctx.f("usage_7d"), ctx.f("usage_28d")
    if trend is None or (u28 is not None and u28 < cfg.min_usage_28d):
        return _Reading("unknown")
    level = _hysteresis(trend, cfg)
    if level != "on":
        return _Reading(level, trend)
    # Floored, so a trend just under a 50 % threshold never reads "at 50 %".
    reasons = [
        f"Usage in the last 7 days is at {math.floor(trend * 100)}% of the 28-day baseline rate"
    ]
    if u7 is not None and u28 is not None:
        reasons.append(f"≈ {_n(u7, 0)} usage events in 7 days against ≈ {_n(u28, 0)} in 28 days")
    return _Reading("on", trend, tuple(reasons))


def _read_inactivity(cfg: r.Inactivity, ctx: _Ctx) -> _Reading:
    # Measured against `now`, so a sweep with features computed a while ago still counts right.
    last = ctx.f("last_usage_at")
    last_at = _from_epoch(last) if last is not None else None
    days = (ctx.now - last_at) / timedelta(days=1) if last_at else ctx.f("days_since_usage")
    level = _hysteresis(days, cfg)
    if level != "on" or days is None:
        return _Reading(level, days)
    reason = f"No product usage for {int(days)} days"
    if last_at is not None:
        reason += f" (last on {last_at:%Y-%m-%d})"
    return _Reading("on", days, (reason,))


def _read_detractor(cfg: r.Detractor, ctx: _Ctx) -> _Reading:
    known, bad, reasons = False, [], []
    for label, key, limit, scale in (
        ("NPS", "nps", cfg.nps_threshold, ""),
        ("CSAT", "csat", cfg.csat_threshold, "/5"),
    ):
        value, at = ctx.f(key), ctx.f(f"{key}_at")
        if value is None or at is None:
            continue
        known = True
        if value <= limit:
            answered, prev = _from_epoch(at), ctx.f(f"{key}_previous")
            was = f" (was {_n(prev)}{scale})" if prev is not None else ""
            bad.append((answered, value))
            reasons.append(f"{label} {_n(value)}{scale} on {answered:%Y-%m-%d}{was}")
    if not bad:
        return _Reading("off" if known else "unknown")
    answered, value = max(bad)
    return _Reading("on", value, tuple(reasons), answered_at=answered)


def _read_health_drop(cfg: r.HealthDrop, ctx: _Ctx) -> _Reading:
    cs = ctx.scores.cs
    start = ctx.now - cfg.window
    points = [v for t, v in ctx.cs_history if start <= t <= ctx.now]
    # The history holds every published CS with its time, `before` among them. Without any
    # (triggers' memory starts mid-stream), `before` is the one earlier CS known; when the
    # history has points, `before` may be older than the window and must not count.
    if ctx.before is not None and not ctx.cs_history:
        points.append(ctx.before.cs)
    peak = max([cs, *points])
    drop = peak - cs
    level = _hysteresis(drop, cfg)
    days = _n(cfg.window / timedelta(days=1), 0)
    fell = round(peak) - round(cs)
    reason = f"CS fell {fell} points in {days} days ({round(peak)} → {round(cs)})"
    return _Reading(level, drop, (reason,) if level == "on" else ())


def _read_renewal_at_risk(cfg: r.RenewalAtRisk, ctx: _Ctx) -> _Reading:
    days, s = ctx.f("days_to_renewal"), ctx.scores
    if days is None or not 0 <= days <= cfg.within_days:
        return _Reading("off", s.cs)
    if cfg.cs_threshold == "segment":
        level: Level = "off" if s.segment in _HIGH_CS_SEGMENTS else "on"
        why = f"segment {s.segment}"
    else:
        level = "on" if s.cs < cfg.cs_threshold else "off" if s.cs >= cfg.cs_rearm else "band"
        why = f"below {_n(cfg.cs_threshold)}"
    reasons = (_renewal_text(days, ctx.now), f"CS {_n(s.cs, 0)} ({why})")
    return _Reading(level, s.cs, reasons if level == "on" else ())


_READERS: dict[str, Callable[[Any, _Ctx], _Reading]] = {
    "expansion_ready": _read_expansion_ready,
    "upsell_intent": _read_upsell_intent,
    "pricing_interest": _read_pricing_interest,
    "cross_sell_click": _read_cross_sell_click,
    "seat_pressure": _read_seat_pressure,
    "renewal_window": _read_renewal_window,
    "usage_drop": _read_usage_drop,
    "inactivity": _read_inactivity,
    "detractor": _read_detractor,
    "health_drop": _read_health_drop,
    "renewal_at_risk": _read_renewal_at_risk,
}
assert set(_READERS) == set(r.RULE_NAMES), "every catalogued rule needs a reader"


# --------------------------------------------------------------------------- formatting


def _n(value: float | None, digits: int = 2) -> str:
    """A number as a rep reads it: 3, 0.45, 74 (no trailing zeros)."""
    if value is None:
        return "?"
    if digits == 0 or float(value).is_integer():
        return str(round(value))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _renewal_text(days: float, now: datetime) -> str:
    return f"Renewal in {int(days)} days (on {now + timedelta(days=days):%Y-%m-%d})"


def _from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _aware_state(state: RuleState | None) -> RuleState:
    if state is None:
        return RuleState()
    times = {
        "last_fired_at": state.last_fired_at,
        "condition_since": state.condition_since,
        "cleared_since": state.cleared_since,
    }
    naive = {k: _aware(v) for k, v in times.items() if v is not None and v.tzinfo is None}
    # As read from PostgreSQL, nothing to convert: the same state (states are replaced, never
    # changed in place).
    return state.but(**naive) if naive else state


def _aware(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC so that comparisons never raise mid-batch.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
