"""The rules pages: how good each rule has been over a period (signals fired, feedback,
precision with its 95 % Wilson interval, outcomes, the median time to a first action) and one
rule's trend by month. The figures are triggers' own: the pages ask its
`GET /v1/rules/performance` and `GET /v1/rules/{name}/performance` (kizashi.triggers.
performance), so the console never counts them a second way. Outcomes: an opportunity is won
when an expansion followed within rules.yaml's outcome window; a churn risk confirmed when
churn or a contraction did, averted when the account renewed."""

from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from kizashi.console.deps import PageError, StateDep, UserDep
from kizashi.console.views import render
from kizashi.contracts.feedback import DEFAULT_PERIOD
from kizashi.contracts.rules import RULES

router = APIRouter(include_in_schema=False)

PERIODS = (("30d", "30 days"), ("90d", "90 days"), ("365d", "a year"), ("all", "all time"))
Period = Annotated[str, Query(max_length=16)]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    """Triggers' figures as the templates show them."""
    precision = data["precision"]
    return {
        "fired": data["signals_fired"],
        "useful": data["useful"],
        "not_useful": data["not_useful"],
        "no_feedback": data["no_feedback"],
        "precision": precision["value"],
        "low": precision["low"],
        "high": precision["high"],
        "won": data["won"],
        "confirmed": data["confirmed"],
        "averted": data["averted"],
        "acted": data["acted_on"],
        "median": _duration(data["median_time_to_first_action_s"]),
    }


async def _ask(state, path: str, period: str) -> dict[str, Any]:
    try:
        response = await state.triggers.get(path, params={"period": period})
    except httpx.HTTPError as error:
        raise PageError(
            502, "Triggers unreachable", "The signals service did not answer; try again."
        ) from error
    if response.status_code == 422:
        raise PageError(400, "Unknown period", "Choose one of the periods offered.")
    if response.status_code != 200:
        raise PageError(502, "No figures", f"The signals service answered {response.status_code}.")
    return response.json()


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request, state: StateDep, user: UserDep, period: Period = DEFAULT_PERIOD
) -> Response:
    data = await _ask(state, "/v1/rules/performance", period)
    known = {r["rule"]: r for r in data["rules"]}
    rules = [
        {"name": name, "kind": rule.kind, "words": rule.words, **_figures(known[name])}
        for name, rule in RULES.items()
        if name in known
    ]
    return render(
        request,
        "rules.html",
        user=user,
        nav="rules",
        rules=rules,
        period=period,
        periods=PERIODS,
        window_days=data["outcome_window_days"],
    )


@router.get("/rules/{name}", response_class=HTMLResponse)
async def rule_page(
    request: Request, state: StateDep, user: UserDep, name: str, period: Period = DEFAULT_PERIOD
) -> Response:
    if name not in RULES:
        raise PageError(404, "No such rule", "There is no rule with that name.")
    data = await _ask(state, f"/v1/rules/{quote(name, safe='')}/performance", period)
    return render(
        request,
        "rule.html",
        user=user,
        nav="rules",
        rule={"name": name, "kind": RULES[name].kind, "words": RULES[name].words},
        figures=_figures(data),
        months=[{"month": m["month"], **_figures(m)} for m in data["months"]],
        period=period,
        periods=PERIODS,
        window_days=data["outcome_window_days"],
    )
