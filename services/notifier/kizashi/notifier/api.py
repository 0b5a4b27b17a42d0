"""The notifier API: deliveries with their attempts, test messages, retries, routes."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from kizashi.notifier import repository
from kizashi.notifier.deliver import send_once
from kizashi.notifier.deps import ApiCaller, EngineDep, StateDep
from kizashi.notifier.samples import sample_signal
from kizashi.runtime.db import raw_transaction

router = APIRouter(prefix="/v1", tags=["deliveries"])


class Attempt(BaseModel):
    attempt: int
    at: datetime
    outcome: str
    status_code: int | None
    error: str | None


class DeliveryView(BaseModel):
    delivery_id: str
    signal_id: str
    receiver: str
    channel: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    # Set when the delivery went (or goes) out in a digest: "<receiver>|<owner>|<window end>".
    digest_key: str | None
    # The owner's daily budget: "immediate" (sent at once within it), "deferred" (over it, in
    # their next digest), or None (not counted: a digest route, no owner, no limit).
    budgeted: str | None = None
    attempt_log: list[Attempt]


class TestResult(BaseModel):
    receiver: str
    ok: bool
    outcome: str
    reason: str
    status_code: int | None


@router.get("/deliveries", response_model=list[DeliveryView])
async def list_deliveries(
    engine: EngineDep,
    _: ApiCaller,
    signal_id: Annotated[str | None, Query(max_length=128)] = None,
    status_: Annotated[
        str | None,
        Query(alias="status", pattern="^(pending|sending|sent|failed|skipped|cancelled)$"),
    ] = None,
    channel: Annotated[str | None, Query(pattern="^(slack|email|webhook|customer_email)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryView]:
    async with raw_transaction(engine) as connection:
        rows = await repository.list_deliveries(
            conn=connection, signal_id=signal_id, status=status_, channel=channel, limit=limit
        )
    return [DeliveryView(**row) for row in rows]


@router.post("/deliveries/{delivery_id}/retry", response_model=dict)
async def retry_delivery(delivery_id: str, service: StateDep, _: ApiCaller) -> dict[str, Any]:
    async with raw_transaction(service.engine) as connection:
        row = await repository.retry_failed(
            conn=connection, delivery_id=delivery_id, now=datetime.now(UTC)
        )
        if row is None:
            exists = await repository.delivery_status(conn=connection, delivery_id=delivery_id)
    if row is None:
        if exists is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no delivery {delivery_id!r}")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"only a failed delivery can be retried (it is {exists})",
        )
    service.wake.set()  # after the commit: the worker sends it now, not at its next poll
    return row


@router.post("/receivers/{name}/test", response_model=TestResult)
async def test_receiver(name: str, service: StateDep, _: ApiCaller) -> TestResult:
    if name not in service.routing.receivers:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no receiver {name!r}")
    result = await send_once(service, name, sample_signal(), delivery_id="test")
    return TestResult(
        receiver=name,
        ok=result.ok,
        outcome=result.outcome,
        reason=result.reason,
        status_code=result.status,
    )


@router.get("/routes")
async def routes(service: StateDep, _: ApiCaller) -> Any:
    return service.routing.describe()
