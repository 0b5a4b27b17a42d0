"""Feedback on a signal: useful or not, and why not. Every channel comes here: the API
(`POST /v1/signals/{id}/feedback`, which the console calls as the signed-in person) and the
signed links in alerts (kizashi.triggers.actions). An answer never changes a signal's status;
it can be changed, the last one counts, and each one is a row of the signal's history."""

import hmac
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from kizashi.contracts.feedback import FeedbackReason
from kizashi.contracts.text import ShortText
from kizashi.runtime.auth import ACTING_USER_HEADER, bearer_token
from kizashi.runtime.db import raw_transaction
from kizashi.triggers import repository
from kizashi.triggers.api import FeedbackView, acting_as
from kizashi.triggers.deps import CallerDep, EngineDep, SettingsDep
from kizashi.triggers.lifecycle import NotFound
from kizashi.triggers.metrics import FEEDBACK_GIVEN
from kizashi.triggers.settings import TriggersSettings

router = APIRouter(prefix="/v1", tags=["signals"])

Channel = Literal["api", "console", "link"]


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    useful: StrictBool
    reason: FeedbackReason | None = Field(
        default=None, description="why not: only with useful=false"
    )
    by: ShortText | None = Field(default=None, description="who answers (service token only)")

    @model_validator(mode="after")
    def _reason_means_not_useful(self) -> "FeedbackBody":
        if self.useful and self.reason is not None:
            raise ValueError("a reason explains useful=false; leave it out when useful=true")
        return self


async def give_feedback(
    connection: asyncpg.Connection,
    *,
    signal_id: str,
    useful: bool,
    reason: str | None,
    actor: str,
    channel: Channel,
) -> FeedbackView:
    row = await repository.record_feedback(
        conn=connection,
        signal_id=signal_id,
        useful=useful,
        reason=reason,
        actor=actor,
        channel=channel,
        now=datetime.now(UTC),
    )
    if row is None:
        raise NotFound(signal_id)
    FEEDBACK_GIVEN.labels(channel, "true" if useful else "false").inc()
    return FeedbackView(
        useful=row["feedback_useful"],
        reason=row["feedback_reason"],
        by=row["feedback_by"],
        at=row["feedback_at"],
    )


def acting_with_service_token(request: Request, settings: TriggersSettings) -> bool:
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    supplied = bearer_token(request) or ""
    return (
        ACTING_USER_HEADER in request.headers
        and bool(token)
        and hmac.compare_digest(supplied.encode(), token.encode())
    )


@router.post("/signals/{signal_id}/feedback", response_model=FeedbackView)
async def feedback(
    signal_id: str,
    body: FeedbackBody,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> FeedbackView:
    """Record the caller's answer. A call that acts for a person with the service token (which
    only the console makes) is the console's channel; anything else is the API's."""
    console = not caller.is_service and acting_with_service_token(request, settings)
    try:
        async with raw_transaction(engine) as connection:
            actor = await acting_as(connection, caller, signal_id, body.by)
            return await give_feedback(
                connection,
                signal_id=signal_id,
                useful=body.useful,
                reason=body.reason,
                actor=actor,
                channel="console" if console else "api",
            )
    except NotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no signal {signal_id!r}") from error
