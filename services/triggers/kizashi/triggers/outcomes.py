"""The outcome API (issue #19, item 2): `POST /v1/accounts/{id}/outcomes` records a renewal,
a churn, an expansion or a contraction with its date and amount; `GET` lists an account's
outcomes, newest first (those from account_updates too). The console's form posts here as
the signed-in person. A rep records outcomes only for the accounts they own (403 else)."""

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from kizashi.contracts.outcomes import OutcomeFact, OutcomeKind
from kizashi.contracts.text import Identifier, ShortText, Text
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import repository
from kizashi.triggers.deps import ApiCaller, CallerDep, EngineDep, SettingsDep
from kizashi.triggers.feedback import acting_with_service_token

router = APIRouter(prefix="/v1", tags=["outcomes"])

# An outcome is a fact: it has happened (a little leeway for clocks), and not before 1970.
FUTURE_LEEWAY = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class OutcomeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: OutcomeKind
    occurred_at: AwareDatetime = Field(description="when it happened (not in the future)")
    amount: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False, strict=True, description="ARR moved"
    )
    note: ShortText | None = None
    by: ShortText | None = Field(default=None, description="who records it (service token only)")

    @field_validator("occurred_at")
    @classmethod
    def _happened(cls, value: datetime) -> datetime:
        if value < EARLIEST or value > datetime.now(UTC) + FUTURE_LEEWAY:
            raise ValueError("an outcome has happened: a time between 1970 and now")
        return value


class OutcomeView(BaseModel):
    outcome_id: str
    account_id: str
    kind: OutcomeKind
    occurred_at: datetime
    amount: float | None
    source: str
    recorded_by: str | None
    note: Text | None
    recorded_at: datetime


@router.post(
    "/accounts/{account_id}/outcomes",
    response_model=OutcomeView,
    status_code=status.HTTP_201_CREATED,
)
async def record_outcome(
    account_id: Identifier,
    body: OutcomeBody,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> OutcomeView:
    """Record an outcome as the caller; the console's calls (for a person, with the service
    token) are its source 'console', anything else 'api'."""
    console = not caller.is_service and acting_with_service_token(request, settings)
    fact = OutcomeFact(
        outcome_id=uuid.uuid4().hex,
        kind=body.kind,
        occurred_at=body.occurred_at,
        amount=body.amount,
    )
    async with raw_transaction(engine) as connection:
        owner = await repository.account_owner(conn=connection, account_id=account_id)
        if owner is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account {account_id!r}")
        if not caller.may_act_on(owner[0]):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="a rep may record outcomes only for the accounts they own",
            )
        actor = (body.by or caller.actor) if caller.is_service else caller.actor
        await repository.insert_outcomes(
            conn=connection,
            account_ids=[account_id],
            outcomes=[fact],
            source="console" if console else "api",
            recorded_by=actor,
            note=body.note,
        )
        row = await repository.get_outcome(conn=connection, outcome_id=fact.outcome_id)
    return OutcomeView(**dict(row))


@router.get("/accounts/{account_id}/outcomes", response_model=list[OutcomeView])
async def list_outcomes(account_id: str, engine: EngineDep, _: ApiCaller) -> list[OutcomeView]:
    async with raw_transaction(engine) as connection:
        rows = await repository.account_outcomes(conn=connection, account_id=account_id)
    return [OutcomeView(**dict(row)) for row in rows]
