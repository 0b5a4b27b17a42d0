"""The recycle page (`/recycle`): the accounts resolved "not now" that wait to come back, and
when (or the OP they wait for). The list is triggers' own: the page asks its
`GET /v1/recycle` (kizashi.triggers.recycle_api), so the console never reads it a second way.
Who sees it: anyone signed in, as the inbox; a rep's default is their own accounts."""

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from kizashi.console import repository
from kizashi.console.deps import PageError, StateDep, UserDep
from kizashi.console.views import render
from kizashi.contracts.resolutions import NOT_NOW, RESOLUTION_REASONS
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 200
REASONS = {key: words for key, words in RESOLUTION_REASONS.items() if key in NOT_NOW}


async def _ask(state, params: dict[str, Any]) -> dict[str, Any]:
    try:
        response = await state.triggers.get("/v1/recycle", params=params)
    except httpx.HTTPError as error:
        raise PageError(
            502, "Triggers unreachable", "The signals service did not answer; try again."
        ) from error
    if response.status_code == 422:
        raise PageError(400, "Not understood", "Choose one of the owners and reasons offered.")
    if response.status_code != 200:
        raise PageError(502, "No list", f"The signals service answered {response.status_code}.")
    return response.json()


@router.get("/recycle", response_class=HTMLResponse)
async def recycle_page(
    request: Request,
    state: StateDep,
    user: UserDep,
    owner: Annotated[str, Query(max_length=320)] = "",
    reason: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    if reason and reason not in REASONS:
        raise PageError(400, "Unknown reason", f"reason must be one of {', '.join(REASONS)}")
    chosen = owner.strip().lower() or ("mine" if user.role == "rep" else "all")
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    if chosen != "all":
        params["owner"] = user.email if chosen == "mine" else chosen
    if reason:
        params["reason"] = reason
    data = await _ask(state, params)
    async with raw_transaction(state.engine) as connection:
        people = await repository.owners(conn=connection)
    return render(
        request,
        "recycle.html",
        user=user,
        nav="recycle",
        entries=data["items"],
        more=data["next_cursor"] is not None,
        owner=chosen,
        reason=reason,
        reasons=REASONS,
        people=people,
    )
