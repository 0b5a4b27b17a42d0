"""Logging an observation from the account page (issue #18): the form is checked here
(kizashi.console.obsform: the contract and phases.yaml), then sent to ingest's own API,
`POST /v1/events`, with the console's ingest key (architecture §11.5 says why not straight to
the broker). The person sees "Logged" only once ingest answered 202, which it does only once
the broker acknowledged the event; any other answer shows the form again, with what was
typed, the reason, and the same event id, so sending it again never logs it twice."""

import logging
from urllib.parse import quote

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from kizashi.console import repository
from kizashi.console.account import account_view, may_log
from kizashi.console.deps import EngineDep, FormUserDep, PageError, StateDep
from kizashi.console.metrics import OBSERVATIONS
from kizashi.console.obsform import FormRefused, observation_of
from kizashi.console.pages import see_other
from kizashi.console.state import ConsoleState
from kizashi.runtime.db import raw_transaction

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


class NotSent(Exception):
    def __init__(self, status_code: int, errors: dict[str, str]) -> None:
        super().__init__(status_code)
        self.status_code, self.errors = status_code, errors


async def send(state: ConsoleState, event: dict) -> None:
    """Hands the event to ingest; returns once ingest answered 202 (the broker acknowledged
    it). Raises NotSent with what to show otherwise."""
    retry = "Nothing was logged. Send the form again: it will not be logged twice."
    try:
        response = await state.ingest.post("/v1/events", json=event)
    except httpx.HTTPError as error:
        log.warning("ingest did not answer: %s", type(error).__name__)
        raise NotSent(503, {"(form)": f"Ingest did not answer. {retry}"}) from error
    if response.status_code == 202:
        return
    if response.status_code == 422:
        try:
            rejected = response.json().get("rejected") or []
        except ValueError:
            rejected = []
        errors = {str(r.get("field")): str(r.get("reason")) for r in rejected}
        raise NotSent(422, errors or {"(form)": "Ingest refused the observation."})
    if response.status_code == 401:
        log.error("ingest refused the console's ingest key (KIZASHI_INGEST_KEYS)")
        raise NotSent(
            503,
            {
                "(form)": "The console has no ingest key that ingest accepts "
                "(KIZASHI_INGEST_KEYS). Nothing was logged; tell an admin."
            },
        )
    log.warning("ingest answered %d to an observation", response.status_code)
    raise NotSent(503, {"(form)": f"Ingest answered {response.status_code}. {retry}"})


@router.post("/observations")
async def log_observation(
    request: Request, state: StateDep, engine: EngineDep, user: FormUserDep
) -> Response:
    form = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    account_id = form.get("account_id", "")
    async with raw_transaction(engine) as connection:
        row = await repository.account(conn=connection, account_id=account_id)
    if row is None:
        raise PageError(404, "No such account", "There is no account with that id.")
    if not may_log(user, orjson.loads(row["facts"]).get("owner_email")):
        OBSERVATIONS.labels("forbidden").inc()
        raise PageError(
            403,
            "Not your account",
            "A rep logs observations about the accounts they own (or that nobody owns yet). "
            "Ask the owner or a manager.",
        )
    try:
        event = observation_of(
            form, author=user.email, phases=state.phases, kinds=state.observation_kinds
        )
        await send(state, event)
    except (FormRefused, NotSent) as refused:
        OBSERVATIONS.labels("refused" if refused_by_input(refused) else "failed").inc()
        return await account_view(
            request,
            state,
            user,
            account_id,
            form=form,
            errors=refused.errors,
            status_code=refused.status_code if isinstance(refused, NotSent) else 422,
        )
    OBSERVATIONS.labels("logged").inc()
    return see_other(f"/accounts/{quote(account_id, safe='')}?logged={event['kind']}#observe")


def refused_by_input(error: Exception) -> bool:
    return isinstance(error, FormRefused) or getattr(error, "status_code", 0) == 422
