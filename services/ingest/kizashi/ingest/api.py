"""`POST /v1/events`: one event or `{"events": [...]}`."""

import logging
from collections import Counter
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kizashi.ingest.accept import BatchShapeError, accept, events_of
from kizashi.ingest.authors import known_authors
from kizashi.ingest.body import parse_json, read_limited
from kizashi.ingest.deps import IngestSource, StateDep
from kizashi.ingest.intake import CLOSED_DETAIL
from kizashi.ingest.limits import RETRY_AFTER_S
from kizashi.ingest.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from kizashi.ingest.state import IngestState
from kizashi.runtime.db import is_transient
from kizashi.runtime.kafka import BrokerUnavailable, RecordRejected

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["events"])


class RejectedEvent(BaseModel):
    index: int
    field: str
    reason: str
    event_id: str | None = None


class IngestResult(BaseModel):
    accepted: int
    event_ids: list[str]
    rejected: list[RejectedEvent]


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON, bad gzip, not UTF-8, wrong shape"},
    401: {"model": ErrorBody, "description": "Missing or invalid ingest key"},
    413: {"model": ErrorBody, "description": "Body over 1 MiB (after decompression)"},
    415: {"model": ErrorBody, "description": "Not JSON, or an unsupported content encoding"},
    422: {"model": IngestResult, "description": "No event in the request was valid"},
    503: {
        "model": ErrorBody,
        "description": "The broker (or the database, for observations' authors) did not "
        "answer, or ingest is stopping; retry later",
    },
}


async def publish(state: IngestState, raw_events: list[Any], source: str) -> JSONResponse:
    """Validate, send and answer: 202 only once Kafka acknowledged every accepted event."""
    result = accept(
        raw_events,
        source=source,
        criteria=state.phase_criteria,
        kinds=state.observation_kinds,
    )
    if authors := result.authors_to_check():
        try:
            assert state.runtime.engine is not None
            known = await known_authors(state.runtime.engine, authors)
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("database unavailable: %s", type(error).__name__)
            return JSONResponse(
                {
                    "error": "database_unavailable",
                    "detail": "could not check the observations' authors; nothing was "
                    "accepted, retry with the same event_ids",
                },
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        result.refuse_unknown_authors(known)
    for rejection in result.rejected:
        EVENTS_REJECTED.labels(reason_label(rejection.reason)).inc()
    body = {
        "accepted": len(result.records),
        "event_ids": result.event_ids,
        "rejected": [r.as_json() for r in result.rejected],
    }
    if not result.records:
        return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        await state.producer.send_all(result.records)
    except (BrokerUnavailable, RecordRejected) as error:
        log.warning("answered 503 for %d events: %s", len(result.records), error)
        EVENTS_REJECTED.labels("broker_unavailable").inc(len(result.records))
        return JSONResponse(
            {
                "error": "broker_unavailable",
                "detail": "the event log did not acknowledge the events; nothing was accepted, "
                "retry with the same event_ids",
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    for event_type, count in Counter(result.types).items():
        EVENTS_ACCEPTED.labels(event_type).inc(count)
    return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)


def reason_label(reason: str) -> str:
    if "future" in reason:
        return "future"
    if "larger than" in reason:
        return "too_large"
    return "invalid"


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    responses=ERROR_RESPONSES,
    summary='Send one event, or a batch as {"events": [...]} (≤ 1000 events, ≤ 1 MiB)',
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def post_events(request: Request, source: IngestSource, state: StateDep) -> JSONResponse:
    if not state.intake.open:
        EVENTS_REJECTED.labels("stopping").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=CLOSED_DETAIL,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    with state.intake.admitted():
        payload = parse_json(await read_limited(request))
        try:
            raw_events = events_of(payload)
        except BatchShapeError as error:
            code = (
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
                if "at most" in str(error)
                else status.HTTP_400_BAD_REQUEST
            )
            raise HTTPException(code, detail=str(error)) from error
        return await publish(state, raw_events, source)
