"""How good each rule is: `GET /v1/rules/{name}/performance?period=` and the per-rule gauges
on /metrics. Precision is useful / (useful + not useful) over the signals' current feedback,
with its 95 % Wilson interval (kizashi.contracts.feedback); outcomes (won, confirmed,
averted) are not counted yet (issue #19, item 2)."""

import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from kizashi.contracts.feedback import DEFAULT_PERIOD, BadPeriod, period_start, precision
from kizashi.contracts.rules import RULE_NAMES
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import repository
from kizashi.triggers.deps import ApiCaller, EngineDep
from kizashi.triggers.metrics import (
    RULE_FEEDBACK,
    RULE_FIRED,
    RULE_FIRST_ACTION,
    RULE_PRECISION,
    RULE_PRECISION_LOWER,
    RULE_PRECISION_UPPER,
)
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
        "acted_on": row["acted"],
        "median_time_to_first_action_s": None if median is None else float(median),
    }


EMPTY = {"fired": 0, "useful": 0, "not_useful": 0, "acted": 0, "median_first_action_s": None}


@router.get("/rules/{name}/performance", response_model=RulePerformance)
async def rule_performance(
    name: str,
    engine: EngineDep,
    _: ApiCaller,
    period: Annotated[str, Query(max_length=16, description="'30d', '12w' or 'all'")] = (
        DEFAULT_PERIOD
    ),
) -> RulePerformance:
    if name not in RULE_NAMES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no rule {name[:64]!r}")
    until = datetime.now(UTC)
    try:
        since = period_start(period, until)
    except BadPeriod as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    async with raw_transaction(engine) as connection:
        rows = await repository.rule_performance(
            conn=connection, rules=[name], since=since, until=until
        )
    whole = next((row for row in rows if row["month"] is None), EMPTY)
    return RulePerformance(
        rule=name,
        period=period,
        since=since,
        until=until,
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
        )
    wholes = {row["rule"]: row for row in rows if row["month"] is None}
    for rule in RULE_NAMES:
        row = wholes.get(rule, EMPTY)
        RULE_FIRED.labels(rule).set(row["fired"])
        RULE_FEEDBACK.labels(rule, "true").set(row["useful"])
        RULE_FEEDBACK.labels(rule, "false").set(row["not_useful"])
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
