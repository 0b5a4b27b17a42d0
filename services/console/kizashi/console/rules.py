"""The rules pages: how good each rule has been over a period (signals fired, feedback,
precision with its 95 % Wilson interval, the median time to a first action) and one rule's
trend by month. Read from triggers' tables (architecture §11.2); the same figures as
triggers' GET /v1/rules/{name}/performance. Outcomes (won, confirmed, averted) are not
counted yet (issue #19, item 2)."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from kizashi.console import repository
from kizashi.console.deps import EngineDep, PageError, UserDep
from kizashi.console.views import render
from kizashi.contracts.feedback import DEFAULT_PERIOD, BadPeriod, period_start, precision
from kizashi.contracts.rules import RULES
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)

PERIODS = (("30d", "30 days"), ("90d", "90 days"), ("365d", "a year"), ("all", "all time"))
Period = Annotated[str, Query(max_length=16)]
EMPTY = {"fired": 0, "useful": 0, "not_useful": 0, "acted": 0, "median_first_action_s": None}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


def _figures(row: Any) -> dict[str, Any]:
    useful, not_useful = row["useful"], row["not_useful"]
    value, low, high = precision(useful, not_useful)
    return {
        "fired": row["fired"],
        "useful": useful,
        "not_useful": not_useful,
        "no_feedback": row["fired"] - useful - not_useful,
        "precision": value,
        "low": low,
        "high": high,
        "acted": row["acted"],
        "median": _duration(row["median_first_action_s"]),
    }


async def _rows(engine, rules: list[str], period: str) -> list[Any]:
    until = datetime.now(UTC)
    try:
        since = period_start(period, until)
    except BadPeriod as error:
        raise PageError(400, "Unknown period", str(error)) from error
    async with raw_transaction(engine) as connection:
        return await repository.rule_performance(
            conn=connection, rules=rules, since=since, until=until
        )


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request, engine: EngineDep, user: UserDep, period: Period = DEFAULT_PERIOD
) -> Response:
    rows = await _rows(engine, list(RULES), period)
    wholes = {row["rule"]: row for row in rows if row["month"] is None}
    rules = [
        {"name": name, "kind": rule.kind, "words": rule.words, **_figures(wholes.get(name, EMPTY))}
        for name, rule in RULES.items()
    ]
    return render(
        request, "rules.html", user=user, nav="rules", rules=rules, period=period, periods=PERIODS
    )


@router.get("/rules/{name}", response_class=HTMLResponse)
async def rule_page(
    request: Request, engine: EngineDep, user: UserDep, name: str, period: Period = DEFAULT_PERIOD
) -> Response:
    if name not in RULES:
        raise PageError(404, "No such rule", "There is no rule with that name.")
    rows = await _rows(engine, [name], period)
    whole = next((row for row in rows if row["month"] is None), EMPTY)
    months = [{"month": row["month"], **_figures(row)} for row in rows if row["month"]]
    return render(
        request,
        "rule.html",
        user=user,
        nav="rules",
        rule={"name": name, "kind": RULES[name].kind, "words": RULES[name].words},
        figures=_figures(whole),
        months=months,
        period=period,
        periods=PERIODS,
    )
