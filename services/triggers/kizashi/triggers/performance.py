"""How good each rule is: `GET /v1/rules/{name}/performance?period=`, every rule's figures at
once (`GET /v1/rules/performance?period=`, the console's rules page) and the per-rule gauges
on /metrics. Precision is useful / (useful + not useful) over the signals' current feedback,
with its 95 % Wilson interval (kizashi.contracts.feedback). Outcomes within rules.yaml's
`outcome_window` of firing: an opportunity is won when an expansion followed, a churn risk
confirmed when churn or a contraction did, averted when the account renewed."""

import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from kizashi.contracts.feedback import DEFAULT_PERIOD, BadPeriod, period_start, precision
from kizashi.contracts.resolutions import NOT_NOW, RECYCLE_RULE
from kizashi.contracts.rules import RULE_KINDS, RULE_NAMES
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import repository
from kizashi.triggers.deps import ApiCaller, StateDep
from kizashi.triggers.metrics import (
    RECYCLE_WAITING,
    RULE_FEEDBACK,
    RULE_FIRED,
    RULE_FIRST_ACTION,
    RULE_OUTCOMES,
    RULE_PRECISION,
    RULE_PRECISION_LOWER,
    RULE_PRECISION_UPPER,
    RULE_STAGES,
)
from kizashi.triggers.repository import recycle as recycle_sql
from kizashi.triggers.state import TriggersState

router = APIRouter(prefix="/v1", tags=["rules"])

GAUGE_PERIOD = "90d"
GAUGE_REFRESH_S = 60.0


class PrecisionView(BaseModel):
    """None throughout when no signal of the period has feedback."""

    value: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95


class Figures(BaseModel):
    signals_fired: int
    useful: int
    not_useful: int
    # Signals with no feedback: fired - useful - not_useful.
    no_feedback: int
    precision: PrecisionView
    # Outcomes within the window after firing (opportunities: won; churn risks: confirmed or
    # averted; 0 for the other kind).
    won: int
    confirmed: int
    averted: int
    # Signals someone acted on (ack, snooze, resolve or feedback), and the median seconds
    # from firing to that first action; None when no one acted.
    acted_on: int
    median_time_to_first_action_s: float | None


class MonthFigures(Figures):
    month: str  # YYYY-MM, UTC


class RulePerformance(Figures):
    rule: str
    period: str
    since: datetime | None
    until: datetime
    outcome_window_days: float
    # Calendar months (UTC) in which the rule fired, oldest first.
    months: list[MonthFigures]


def figures(row: Any) -> dict[str, Any]:
    useful, not_useful = row["useful"], row["not_useful"]
    median = row["median_first_action_s"]
    return {
        "signals_fired": row["fired"],
        "useful": useful,
        "not_useful": not_useful,
        "no_feedback": row["fired"] - useful - not_useful,
        "precision": PrecisionView(**precision(useful, not_useful)._asdict()),
        "won": row["won"],
        "confirmed": row["confirmed"],
        "averted": row["averted"],
        "acted_on": row["acted"],
        "median_time_to_first_action_s": None if median is None else float(median),
    }


EMPTY = {
    "fired": 0,
    "useful": 0,
    "not_useful": 0,
    "won": 0,
    "confirmed": 0,
    "averted": 0,
    "acted": 0,
    "median_first_action_s": None,
}


class RuleFigures(Figures):
    rule: str


class AllRules(BaseModel):
    period: str
    since: datetime | None
    until: datetime
    outcome_window_days: float
    # Every rule of the catalogue, in its order (zeros for a rule that did not fire).
    rules: list[RuleFigures]


Period = Annotated[str, Query(max_length=16, description="'30d', '12w' or 'all'")]


def _since(period: str, until: datetime) -> datetime | None:
    try:
        return period_start(period, until)
    except BadPeriod as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error


@router.get("/rules/performance", response_model=AllRules)
async def all_rules_performance(
    state: StateDep, _: ApiCaller, period: Period = DEFAULT_PERIOD
) -> AllRules:
    until = datetime.now(UTC)
    since = _since(period, until)
    async with raw_transaction(state.engine) as connection:
        rows = await repository.rule_performance(
            conn=connection,
            rules=list(RULE_NAMES),
            since=since,
            until=until,
            window=state.rules.outcome_window,
        )
    wholes = {row["rule"]: row for row in rows if row["month"] is None}
    return AllRules(
        period=period,
        since=since,
        until=until,
        outcome_window_days=state.rules.outcome_window.total_seconds() / 86_400,
        rules=[RuleFigures(rule=name, **figures(wholes.get(name, EMPTY))) for name in RULE_NAMES],
    )


@router.get("/rules/{name}/performance", response_model=RulePerformance)
async def rule_performance(
    name: str,
    state: StateDep,
    _: ApiCaller,
    period: Period = DEFAULT_PERIOD,
) -> RulePerformance:
    if name not in RULE_NAMES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no rule {name[:64]!r}")
    until = datetime.now(UTC)
    since = _since(period, until)
    async with raw_transaction(state.engine) as connection:
        rows = await repository.rule_performance(
            conn=connection,
            rules=[name],
            since=since,
            until=until,
            window=state.rules.outcome_window,
        )
    whole = next((row for row in rows if row["month"] is None), EMPTY)
    return RulePerformance(
        rule=name,
        period=period,
        since=since,
        until=until,
        outcome_window_days=state.rules.outcome_window.total_seconds() / 86_400,
        months=[MonthFigures(month=r["month"], **figures(r)) for r in rows if r["month"]],
        **figures(whole),
    )


async def refresh_gauges(service: TriggersState) -> None:
    """Every rule's figures over GAUGE_PERIOD, in one query, onto the gauges."""
    until = datetime.now(UTC)
    async with raw_transaction(service.engine) as connection:
        rows = await repository.rule_performance(
            conn=connection,
            rules=list(RULE_NAMES),
            since=period_start(GAUGE_PERIOD, until),
            until=until,
            window=service.rules.outcome_window,
        )
    wholes = {row["rule"]: row for row in rows if row["month"] is None}
    for rule in RULE_NAMES:
        row = wholes.get(rule, EMPTY)
        RULE_FIRED.labels(rule).set(row["fired"])
        RULE_FEEDBACK.labels(rule, "true").set(row["useful"])
        RULE_FEEDBACK.labels(rule, "false").set(row["not_useful"])
        for result in ("won", "confirmed", "averted"):
            RULE_OUTCOMES.labels(rule, result).set(row[result])
        value, low, high = precision(row["useful"], row["not_useful"])
        median = row["median_first_action_s"]
        for gauge, figure in (
            (RULE_PRECISION, value),
            (RULE_PRECISION_LOWER, low),
            (RULE_PRECISION_UPPER, high),
            (RULE_FIRST_ACTION, median),
        ):
            if figure is None:
                with contextlib.suppress(KeyError):  # no series to take away
                    gauge.remove(rule)
            else:
                gauge.labels(rule).set(float(figure))
    await refresh_stage_gauges(service, period_start(GAUGE_PERIOD, until))


# Every opportunity rule, and the opportunities recycled accounts come back with.
OPPORTUNITY_RULES = (*(r for r in RULE_NAMES if RULE_KINDS[r] == "opportunity"), RECYCLE_RULE)


async def refresh_stage_gauges(service: TriggersState, since: datetime | None) -> None:
    """Opportunities per rule by stage (fired, acted on, won) since `since`, and the recycle
    list's waiting accounts per reason: two grouped queries (docs/kpis.md, "Stages")."""
    async with raw_transaction(service.engine) as connection:
        stages = await recycle_sql.opportunity_stages(conn=connection, since=since)
        waiting = await recycle_sql.waiting_per_reason(conn=connection)
    by_rule = {row["rule"]: row for row in stages}
    for rule in OPPORTUNITY_RULES:
        row = by_rule.get(rule)
        for stage in ("fired", "acted_on", "won"):
            RULE_STAGES.labels(rule, stage).set(row[stage] if row else 0)
    for reason in sorted(NOT_NOW):
        RECYCLE_WAITING.labels(reason).set(waiting.get(reason, 0))
