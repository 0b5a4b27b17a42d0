"""The signals inbox, a signal's page, and the actions (ack, snooze,
resolve, feedback). Reading is straight from the tables (architecture §11.2); every action goes to
triggers' signals API as the signed-in person, so it runs triggers' one lifecycle code and
triggers' own check of who may act."""

from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from kizashi.console import repository
from kizashi.console.deps import EngineDep, FormUserDep, PageError, StateDep, User, UserDep
from kizashi.console.metrics import ACTIONS
from kizashi.console.pages import safe_next, see_other
from kizashi.console.views import render
from kizashi.contracts.feedback import REASONS
from kizashi.contracts.resolutions import (
    MAX_TIMING_MONTHS,
    RECYCLE_RULE,
    RESOLUTION_REASONS,
    resolution_problem,
)
from kizashi.contracts.rules import RULE_NAMES
from kizashi.runtime.auth import ACTING_USER_HEADER
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)

STATUSES = ("open", "acknowledged", "snoozed", "resolved", "retracted")
KINDS = ("opportunity", "churn_risk")
SNOOZE_CHOICES = ((1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days"), (168, "1 week"))
INBOX_LIMIT = 200
DONE = {
    "ack": "Acknowledged.",
    "snooze": "Snoozed.",
    "resolve": "Resolved.",
    "feedback": "Thank you: your feedback is recorded.",
}

Choice = Annotated[str, Query(max_length=64)]
# The inbox's rule filter: the catalogue, and the opportunities recycled accounts come back as.
FILTER_RULES = (*RULE_NAMES, RECYCLE_RULE)
# What the resolve form (actions.html) offers.
RESOLVE_FORM = {"resolution_reasons": RESOLUTION_REASONS, "max_timing_months": MAX_TIMING_MONTHS}


def _reasons(value: Any) -> list[str]:
    reasons = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [str(r) for r in reasons or []]


@router.get("/signals", response_class=HTMLResponse)
async def inbox(
    request: Request,
    engine: EngineDep,
    user: UserDep,
    status: Choice = "",
    kind: Choice = "",
    rule: Choice = "",
    owner: Annotated[str, Query(max_length=320)] = "",
    done: Choice = "",
) -> Response:
    for name, value, allowed in (
        ("status", status, STATUSES),
        ("kind", kind, KINDS),
        ("rule", rule, FILTER_RULES),
    ):
        if value and value not in allowed:
            raise PageError(400, "Unknown filter", f"{name} must be one of {', '.join(allowed)}")
    owner_email = user.email if owner.strip().lower() == "mine" else owner.strip().lower() or None
    async with raw_transaction(engine) as connection:
        rows = await repository.inbox(
            conn=connection,
            me=user.email,
            status=status or None,
            kind=kind or None,
            rule=rule or None,
            owner=owner_email,
            limit=INBOX_LIMIT,
        )
        counts = await repository.status_counts(
            conn=connection, kind=kind or None, rule=rule or None, owner=owner_email
        )
    filters = {"status": status, "kind": kind, "rule": rule, "owner": owner}

    def link(**changes: str) -> str:
        query = {k: v for k, v in {**filters, **changes}.items() if v}
        return "/signals" + (f"?{urlencode(query)}" if query else "")

    signals = [{**dict(row), "reasons": _reasons(row["reasons"])} for row in rows]
    return render(
        request,
        "inbox.html",
        user=user,
        signals=signals,
        counts=counts,
        filters=filters,
        link=link,
        statuses=STATUSES,
        kinds=KINDS,
        rules=FILTER_RULES,
        snooze_choices=SNOOZE_CHOICES,
        back=link(),
        notice=DONE.get(done),
        **RESOLVE_FORM,
    )


@router.get("/signals/{signal_id}", response_class=HTMLResponse)
async def signal_page(
    request: Request, engine: EngineDep, user: UserDep, signal_id: str, done: Choice = ""
) -> Response:
    async with raw_transaction(engine) as connection:
        row = await repository.signal(conn=connection, signal_id=signal_id)
        actions = await repository.signal_actions(conn=connection, signal_id=signal_id)
    if row is None:
        raise PageError(404, "No such signal", "There is no signal with that id.")
    payload = orjson.loads(row["payload"])
    signal = {
        **dict(row),
        "headline": payload.get("headline"),
        "reasons": _reasons(payload.get("reasons")),
        "play": payload.get("suggested_play", ""),
        "account_name": (payload.get("account") or {}).get("name"),
        # Why late events showed it did not hold (kizashi.triggers.corrections).
        "retraction": (payload.get("retracted") or {}).get("reason"),
    }
    return render(
        request,
        "signal.html",
        user=user,
        s=signal,
        actions=actions,
        snooze_choices=SNOOZE_CHOICES,
        reasons=REASONS,
        back=f"/signals/{quote(signal_id, safe='')}",
        notice=DONE.get(done),
        rule_pages=RULE_NAMES,
        **RESOLVE_FORM,
    )


async def _act(state, user: User, signal_id: str, action: str, body: dict | None) -> None:
    """Ask triggers to do it, as `user` (the service token plus the acting-user header that
    only triggers' auth honours, and only with that token)."""
    try:
        response = await state.triggers.post(
            f"/v1/signals/{quote(signal_id, safe='')}/{action}",
            json=body,
            headers={ACTING_USER_HEADER: user.email},
        )
    except httpx.HTTPError as error:
        ACTIONS.labels(action, "failed").inc()
        raise PageError(
            502, "Triggers unreachable", "The signals service did not answer; try again."
        ) from error
    if response.status_code == 200:
        ACTIONS.labels(action, "done").inc()
        return
    detail = _detail(response)
    if response.status_code == 403:
        ACTIONS.labels(action, "forbidden").inc()
        raise PageError(403, "Not yours to act on", detail)
    if response.status_code in (404, 409, 422):
        ACTIONS.labels(action, "conflict").inc()
        raise PageError(response.status_code, "Nothing done", detail)
    ACTIONS.labels(action, "failed").inc()
    raise PageError(502, "Not done", f"The signals service answered {response.status_code}.")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.reason_phrase)


@router.post("/signals/{signal_id}/feedback")
async def feedback(
    state: StateDep,
    engine: EngineDep,
    user: FormUserDep,
    signal_id: str,
    useful: Annotated[str, Form(max_length=8)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Useful or not (and why not), recorded by triggers as the signed-in person."""
    if useful not in ("true", "false"):
        raise PageError(400, "Useful or not?", "Choose Useful or Not useful.")
    if reason and (useful == "true" or reason not in REASONS):
        raise PageError(400, "Why not useful?", "Choose one of the reasons offered, or none.")
    return await _perform(
        state,
        engine,
        user,
        signal_id,
        "feedback",
        {"useful": useful == "true", "reason": reason or None},
        back,
    )


@router.post("/signals/{signal_id}/{action}")
async def act(
    state: StateDep,
    engine: EngineDep,
    user: FormUserDep,
    signal_id: str,
    action: str,
    hours: Annotated[str, Form(max_length=8)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
    months: Annotated[str, Form(max_length=8)] = "",
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if action not in DONE or action == "feedback":
        raise PageError(404, "No such action", "The actions are ack, snooze and resolve.")
    body = None
    if action == "snooze":
        allowed = {str(h) for h, _ in SNOOZE_CHOICES}
        if hours not in allowed:
            raise PageError(400, "Snooze for how long?", "Choose one of the offered durations.")
        body = {"hours": int(hours)}
    if action == "resolve":
        body = _resolution(reason, months)
    return await _perform(state, engine, user, signal_id, action, body, back)


def _resolution(reason: str, months: str) -> dict | None:
    """The resolve form's reason and months (the box labelled "timing only") as triggers' API
    takes them; None when neither was given. Whether they fit the signal's kind is checked in
    `_perform`, which reads it, and again by triggers."""
    try:
        count = int(months) if months.strip() else None
    except ValueError:
        raise PageError(422, "How many months?", "Months is a whole number, 1 to 24.") from None
    if not reason and count is None:
        return None
    return {"reason": reason or None, "months": count}


async def _perform(
    state, engine, user: User, signal_id: str, action: str, body: dict | None, back: str
) -> Response:
    """Check the signal and the person's right to act on it, then ask triggers."""
    async with raw_transaction(engine) as connection:
        row = await repository.signal(conn=connection, signal_id=signal_id)
    if row is None:
        raise PageError(404, "No such signal", "There is no signal with that id.")
    if not user.may_act_on(row["owner"]):
        ACTIONS.labels(action, "forbidden").inc()
        raise PageError(
            403,
            "Not yours to act on",
            "A rep may act only on the signals of the accounts they own. Ask the owner or a "
            "manager.",
        )
    if action == "resolve":
        given = body or {}
        if problem := resolution_problem(row["kind"], given.get("reason"), given.get("months")):
            ACTIONS.labels(action, "refused").inc()
            raise PageError(422, "Why resolved?", problem[:1].upper() + problem[1:] + ".")
    await _act(state, user, signal_id, action, body)
    target = safe_next(back or "/signals")
    return see_other(f"{target}{'&' if '?' in target else '?'}done={action}")
