"""Outcomes on the account page (issue #19, item 2): what happened to the account (renewals,
churn, expansions, contractions, from the CRM's account_updates or recorded by hand) and a
form to record one. Both go through triggers' outcome API, as the signed-in person for the
form, so triggers alone stores outcomes and checks who may record them (a rep: the accounts
they own)."""

import math
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Form
from fastapi.responses import Response

from kizashi.console.deps import FormUserDep, PageError, StateDep
from kizashi.console.pages import see_other
from kizashi.contracts.outcomes import OUTCOME_KINDS, OUTCOME_WORDS
from kizashi.runtime.auth import ACTING_USER_HEADER

router = APIRouter(include_in_schema=False)

KINDS = {kind: OUTCOME_WORDS[kind] for kind in OUTCOME_KINDS}


def _path(account_id: str) -> str:
    return f"/v1/accounts/{quote(account_id, safe='')}/outcomes"


async def account_outcomes(state, account_id: str) -> list[dict[str, Any]] | None:
    """The account's outcomes, newest first; None when triggers did not answer (the page
    says so rather than failing)."""
    try:
        response = await state.triggers.get(_path(account_id))
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return [
        {**item, "occurred_at": datetime.fromisoformat(item["occurred_at"])}
        for item in response.json()
    ]


def _parse(kind: str, occurred_on: str, amount: str) -> tuple[datetime, float | None]:
    if kind not in KINDS:
        raise PageError(400, "Which outcome?", "Choose renewal, churn, expansion or contraction.")
    try:
        day = date.fromisoformat(occurred_on)
    except ValueError as error:
        raise PageError(400, "When?", "Give the date it happened, as YYYY-MM-DD.") from error
    if day > datetime.now(UTC).date():
        raise PageError(400, "When?", "An outcome has happened: the date cannot be ahead.")
    value = None
    if amount.strip():
        try:
            value = float(amount.replace(",", "").strip())
        except ValueError as error:
            raise PageError(400, "How much?", "The amount is a number (ARR), or empty.") from error
        if not math.isfinite(value) or not 0 <= value <= 1e12:
            raise PageError(400, "How much?", "The amount is a number from 0, or empty.")
    return datetime.combine(day, time(), UTC), value


@router.post("/accounts/{account_id:path}/outcomes")
async def record_outcome(
    state: StateDep,
    user: FormUserDep,
    account_id: str,
    kind: Annotated[str, Form(max_length=16)] = "",
    occurred_on: Annotated[str, Form(max_length=10)] = "",
    amount: Annotated[str, Form(max_length=24)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Recorded by triggers as the signed-in person; back to the account page."""
    at, value = _parse(kind, occurred_on, amount)
    body = {"kind": kind, "occurred_at": at.isoformat(), "amount": value, "note": note or None}
    try:
        response = await state.triggers.post(
            _path(account_id), json=body, headers={ACTING_USER_HEADER: user.email}
        )
    except httpx.HTTPError as error:
        raise PageError(
            502, "Triggers unreachable", "The signals service did not answer; try again."
        ) from error
    if response.status_code == 403:
        raise PageError(
            403,
            "Not yours to record",
            "A rep records outcomes only for the accounts they own. Ask the owner or a manager.",
        )
    if response.status_code == 404:
        raise PageError(404, "No such account", "Kizashi has not scored this account yet.")
    if response.status_code == 422:
        raise PageError(400, "Not recorded", "Check the outcome's fields and try again.")
    if response.status_code != 201:
        answered = response.status_code
        raise PageError(502, "Not recorded", f"The signals service answered {answered}.")
    return see_other(f"/accounts/{quote(account_id, safe='')}?done=outcome#outcomes")
