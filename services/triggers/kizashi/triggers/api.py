"""The signals API: list, read, and move signals through their lifecycle; the rules in force."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.contracts.feedback import FeedbackReason
from kizashi.contracts.resolutions import MAX_TIMING_MONTHS, ResolutionReason
from kizashi.contracts.signals import SignalKind
from kizashi.contracts.text import ShortText
from kizashi.runtime.auth import Caller
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import repository
from kizashi.triggers.deps import ApiCaller, CallerDep, EngineDep, StateDep
from kizashi.triggers.lifecycle import BadResolution, InvalidTransition, NotFound, apply_action
from kizashi.triggers.rules.catalogue import RecycleConfig

router = APIRouter(prefix="/v1", tags=["signals"])

SignalStatus = Annotated[str, Query(pattern="^(open|acknowledged|snoozed|resolved|retracted)$")]


class ActionView(BaseModel):
    """One recorded step of a signal's lifecycle: what, by whom, when."""

    action: str
    actor: str
    at: datetime
    detail: dict[str, Any] | None


class FeedbackView(BaseModel):
    """The last answer given on a signal; `GET /v1/signals/{id}`'s actions hold every one."""

    useful: bool
    reason: FeedbackReason | None
    by: str
    at: datetime


class SignalView(BaseModel):
    signal_id: str
    account_id: str
    kind: SignalKind
    rule: str
    priority: str
    status: str
    snoozed_until: datetime | None
    fired_at: datetime
    status_changed_at: datetime | None
    status_changed_by: str | None
    reasons: list[str]
    suggested_play: str
    signal: dict[str, Any]
    feedback: FeedbackView | None = None
    # The lifecycle so far, oldest first (GET /v1/signals/{id} only).
    actions: list[ActionView] | None = None


class ActionBody(BaseModel):
    by: ShortText | None = Field(default=None, description="who acts (e.g. an email)")


class ResolveBody(ActionBody):
    """An opportunity's resolution needs a reason (`months` with `timing`); a churn risk's
    takes none (docs/signals.md, "Recycle")."""

    reason: ResolutionReason | None = None
    months: int | None = Field(default=None, ge=1, le=MAX_TIMING_MONTHS)


MAX_SNOOZE = timedelta(days=90)


class SnoozeBody(ActionBody):
    until: AwareDatetime | None = Field(default=None, description="at most 90 days ahead")
    hours: float | None = Field(default=None, gt=0, le=MAX_SNOOZE.total_seconds() / 3600)

    @model_validator(mode="after")
    def _one_of(self) -> "SnoozeBody":
        if (self.until is None) == (self.hours is None):
            raise ValueError("give exactly one of 'until' or 'hours'")
        return self

    def deadline(self, now: datetime) -> datetime:
        """When the snooze ends, in UTC: `until` is bounded like `hours` (ValueError else)."""
        if self.until is None:
            return now + timedelta(hours=self.hours or 0)
        try:
            # 9999-12-31T23:00-14:00 is past the last datetime Python can hold in UTC.
            until = self.until.astimezone(UTC)
        except OverflowError:
            raise ValueError("'until' is out of range") from None
        if until <= now:
            raise ValueError("'until' must be in the future")
        if until - now > MAX_SNOOZE:
            raise ValueError(f"'until' must be at most {MAX_SNOOZE.days} days ahead")
        return until


def _view(row: Any) -> SignalView:
    payload = orjson.loads(row["payload"])
    return SignalView(
        signal_id=row["signal_id"],
        account_id=row["account_id"],
        kind=row["kind"],
        rule=row["rule"],
        priority=row["priority"],
        status=row["status"],
        snoozed_until=row["snoozed_until"],
        fired_at=row["fired_at"],
        status_changed_at=row["status_changed_at"],
        status_changed_by=row["status_changed_by"],
        reasons=payload.get("reasons", []),
        suggested_play=payload.get("suggested_play", ""),
        signal=payload,
        feedback=None
        if row["feedback_useful"] is None
        else FeedbackView(
            useful=row["feedback_useful"],
            reason=row["feedback_reason"],
            by=row["feedback_by"],
            at=row["feedback_at"],
        ),
    )


@router.get("/signals", response_model=list[SignalView])
async def list_signals(
    engine: EngineDep,
    _: ApiCaller,
    status_: Annotated[SignalStatus | None, Query(alias="status")] = None,
    kind: SignalKind | None = None,
    account_id: Annotated[str | None, Query(max_length=128)] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SignalView]:
    async with raw_transaction(engine) as connection:
        rows = await repository.list_signals(
            conn=connection,
            status=status_,
            kind=kind,
            account_id=account_id,
            rule=rule,
            limit=limit,
        )
    return [_view(row) for row in rows]


@router.get("/signals/{signal_id}", response_model=SignalView)
async def get_signal(signal_id: str, engine: EngineDep, _: ApiCaller) -> SignalView:
    async with raw_transaction(engine) as connection:
        row = await repository.get_signal(conn=connection, signal_id=signal_id)
        actions = await repository.signal_actions(conn=connection, signal_id=signal_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no signal {signal_id!r}")
    view = _view(row)
    view.actions = [
        ActionView(
            action=a["action"],
            actor=a["actor"],
            at=a["at"],
            detail=orjson.loads(a["detail"]) if a["detail"] else None,
        )
        for a in actions
    ]
    return view


async def acting_as(
    connection: asyncpg.Connection, caller: Caller, signal_id: str, by: str | None = None
) -> str:
    """Who an action by `caller` is recorded as. A person (a personal token, or the console
    acting for them) is recorded as themselves and may act only where their role allows (a
    rep: the accounts they own; 403 else); `by` names the actor only for the service token."""
    if caller.is_service:
        return by or caller.actor
    owner = await repository.signal_owner(conn=connection, signal_id=signal_id)
    if owner is not None and not caller.may_act_on(owner[0]):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"a rep may act only on their own accounts' signals; "
            f"{signal_id!r} belongs to another owner",
        )
    return caller.actor


async def act(
    engine: AsyncEngine,
    signal_id: str,
    action: str,
    caller: Caller,
    by: str | None = None,
    until: datetime | None = None,
    resolution: ResolveBody | None = None,
    recycling: RecycleConfig | None = None,
) -> dict:
    """Apply `action` as `caller` (see `acting_as`)."""
    try:
        async with raw_transaction(engine) as connection:
            actor = await acting_as(connection, caller, signal_id, by)
            return await apply_action(
                connection,
                signal_id=signal_id,
                action=action,
                actor=actor,
                now=datetime.now(UTC),
                until=until,
                reason=resolution and resolution.reason,
                months=resolution and resolution.months,
                recycling=recycling,
            )
    except NotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no signal {signal_id!r}") from error
    except InvalidTransition as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error
    except BadResolution as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error


@router.post("/signals/{signal_id}/ack")
async def acknowledge(
    signal_id: str, engine: EngineDep, caller: CallerDep, body: ActionBody | None = None
) -> dict:
    return await act(engine, signal_id, "ack", caller, body and body.by)


@router.post("/signals/{signal_id}/snooze")
async def snooze(signal_id: str, body: SnoozeBody, engine: EngineDep, caller: CallerDep) -> dict:
    try:
        until = body.deadline(datetime.now(UTC))
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    return await act(engine, signal_id, "snooze", caller, body.by, until)


@router.post("/signals/{signal_id}/resolve")
async def resolve(
    signal_id: str,
    engine: EngineDep,
    state: StateDep,
    caller: CallerDep,
    body: ResolveBody | None = None,
) -> dict:
    """An opportunity needs `reason` (a 422 without one); a "not now" reason parks the
    account on the recycle list (GET /v1/recycle)."""
    return await act(
        engine,
        signal_id,
        "resolve",
        caller,
        body and body.by,
        resolution=body,
        recycling=state.rules.recycle,
    )


@router.get("/rules")
async def rules_in_force(state: StateDep, _: ApiCaller) -> Any:
    return state.rules.describe()
