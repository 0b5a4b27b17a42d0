"""The notifier API: deliveries with their attempts, test messages, retries, routes."""

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel

from kizashi.notifier.deliver import send_once
from kizashi.notifier.samples import sample_signal
from kizashi.runtime.auth import ApiCaller
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
    attempt_log: list[Attempt]


class TestResult(BaseModel):
    receiver: str
    ok: bool
    outcome: str
    reason: str
    status_code: int | None


@router.get("/deliveries", response_model=list[DeliveryView])
async def list_deliveries(
    request: Request,
    _: ApiCaller,
    signal_id: Annotated[str | None, Query(max_length=128)] = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|sending|sent|failed)$")
    ] = None,
    channel: Annotated[str | None, Query(pattern="^(slack|email)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryView]:
    async with raw_transaction(request.app.state.service.engine) as connection:
        rows = await connection.fetch(
            """
            SELECT d.delivery_id, d.signal_id, d.receiver, d.channel, d.status, d.attempts,
                   d.next_attempt_at, d.last_error, d.created_at, d.sent_at,
                   d.digest_key,
                   COALESCE((SELECT json_agg(json_build_object(
                                'attempt', a.attempt, 'at', a.at, 'outcome', a.outcome,
                                'status_code', a.status_code, 'error', a.error)
                             ORDER BY a.at, a.id)
                             FROM delivery_attempts a WHERE a.delivery_id = d.delivery_id),
                            '[]')::text AS attempt_log
            FROM deliveries d
            WHERE ($1::text IS NULL OR d.signal_id = $1) AND ($2::text IS NULL OR d.status = $2)
              AND ($3::text IS NULL OR d.channel = $3)
            ORDER BY d.created_at DESC, d.delivery_id LIMIT $4
            """,
            signal_id,
            status_,
            channel,
            limit,
        )
    return [
        DeliveryView(**{**dict(row), "attempt_log": orjson.loads(row["attempt_log"])})
        for row in rows
    ]


@router.post("/deliveries/{delivery_id}/retry", response_model=dict)
async def retry_delivery(delivery_id: str, request: Request, _: ApiCaller) -> dict[str, Any]:
    service = request.app.state.service
    async with raw_transaction(service.engine) as connection:
        # A digest's deliveries failed together and are retried together, as one message.
        row = await connection.fetchrow(
            """
            WITH target AS (
                SELECT delivery_id, digest_key FROM deliveries
                WHERE delivery_id = $1 AND status = 'failed'
            ), retried AS (
                UPDATE deliveries d SET status = 'pending', next_attempt_at = $2, attempts = 0,
                       updated_at = $2
                FROM target t
                WHERE d.status = 'failed'
                  AND (d.delivery_id = t.delivery_id OR d.digest_key = t.digest_key)
                RETURNING d.delivery_id
            )
            SELECT $1::text AS delivery_id, 'pending' AS status,
                   (SELECT count(*) FROM retried)::int AS deliveries
            FROM target
            """,
            delivery_id,
            datetime.now(UTC),
        )
        if row is None:
            exists = await connection.fetchval(
                "SELECT status FROM deliveries WHERE delivery_id = $1", delivery_id
            )
    if row is None:
        if exists is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no delivery {delivery_id!r}")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"only a failed delivery can be retried (it is {exists})",
        )
    service.wake.set()
    return dict(row)


@router.post("/receivers/{name}/test", response_model=TestResult)
async def test_receiver(name: str, request: Request, _: ApiCaller) -> TestResult:
    service = request.app.state.service
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
async def routes(request: Request, _: ApiCaller) -> Any:
    return request.app.state.service.routing.describe()
