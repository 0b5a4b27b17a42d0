"""The Segment-compatible HTTP Tracking API: `POST /v1/batch`, `/v1/track`, `/v1/identify`,
`/v1/group`, `/v1/page`.

Auth is Segment's: Basic auth with the write key (an ingest key) as the user name, or
`writeKey` in the body. Answers (docs/ingest.md):
- 200 `{"success": true}`: every call was accepted, and every event Kafka acknowledged.
- 400 `{"success": false, "code": "invalid_events", "accepted": n, "rejected": [...]}`:
  some calls were refused (listed by index, field, reason); the others were accepted.
- 422: the same body, when no call was valid.
- 503 with Retry-After: the broker (or the database of user links) did not answer, or ingest
  is stopping (a clean stop of `kizashi up`); nothing of the request counts as accepted, send
  it again (message ids make that harmless).
Other errors (400 malformed, 401, 413, 415) carry `success`, `code` and `message` too, which
is what Segment's SDKs read.
"""

import base64
import binascii
import logging
from collections import Counter
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kizashi.ingest.accept import Rejection, accept
from kizashi.ingest.api import RejectedEvent, reason_label
from kizashi.ingest.auth import source_for_secret
from kizashi.ingest.body import parse_json, read_limited
from kizashi.ingest.deps import SettingsDep, StateDep
from kizashi.ingest.intake import CLOSED_DETAIL
from kizashi.ingest.limits import MAX_EVENTS_PER_BATCH, RETRY_AFTER_S
from kizashi.ingest.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from kizashi.ingest.segment import translate, users_to_look_up
from kizashi.ingest.settings import IngestSettings
from kizashi.ingest.state import IngestState
from kizashi.runtime.auth import bearer_token
from kizashi.runtime.db import is_transient
from kizashi.runtime.http import ERROR_CODES
from kizashi.runtime.kafka import BrokerUnavailable, RecordRejected

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["segment"])


class SegmentSuccess(BaseModel):
    success: bool


class SegmentFailure(BaseModel):
    success: bool
    code: str
    message: str
    accepted: int = 0
    rejected: list[RejectedEvent] = []


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": SegmentFailure, "description": "Malformed body, or some calls refused"},
    401: {"model": SegmentFailure, "description": "Missing or invalid write key"},
    413: {"model": SegmentFailure, "description": "Over 1 MiB or 1000 calls"},
    415: {"model": SegmentFailure, "description": "Not JSON, or an unsupported encoding"},
    422: {"model": SegmentFailure, "description": "No call in the request was valid"},
    503: {
        "model": SegmentFailure,
        "description": "Broker or database away, or ingest stopping; retry later",
    },
}
BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}}


def _failure(
    code: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"success": False, "code": ERROR_CODES.get(code, "error"), "message": message, **extra}
    if code == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    if code == 401:
        headers = {"WWW-Authenticate": 'Basic realm="kizashi"'}
    return JSONResponse(body, status_code=code, headers=headers)


def _header_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, _ = (
                base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return user
    return bearer_token(request)


async def _handle(
    request: Request, forced: str | None, state: IngestState, settings: IngestSettings
) -> JSONResponse:
    header_key = _header_key(request)
    if header_key is not None and source_for_secret(settings, header_key) is None:
        EVENTS_REJECTED.labels("unauthorized").inc()
        return _failure(401, "invalid write key")
    if not state.intake.open:
        EVENTS_REJECTED.labels("stopping").inc()
        return _failure(503, CLOSED_DETAIL)
    with state.intake.admitted():
        return await _read_and_publish(request, forced, state, settings, header_key)


async def _read_and_publish(
    request: Request,
    forced: str | None,
    state: IngestState,
    settings: IngestSettings,
    header_key: str | None,
) -> JSONResponse:
    try:
        payload = parse_json(await read_limited(request))
    except HTTPException as error:
        # e.g. 408 (the body came too slowly) keeps its `Connection: close`.
        return _failure(error.status_code, str(error.detail), error.headers)
    if not isinstance(payload, dict):
        return _failure(400, "the body must be a JSON object")
    source = source_for_secret(settings, header_key or payload.get("writeKey"))
    if source is None:
        EVENTS_REJECTED.labels("unauthorized").inc()
        return _failure(401, "send the write key as the Basic auth user name, or as writeKey")
    batch_context = None
    if forced is None:
        messages = payload.get("batch")
        if not isinstance(messages, list) or not messages:
            return _failure(400, "'batch' must be a non-empty list of calls")
        if len(messages) > MAX_EVENTS_PER_BATCH:
            return _failure(
                413, f"a batch holds at most {MAX_EVENTS_PER_BATCH} calls, got {len(messages)}"
            )
        if isinstance(payload.get("context"), dict):
            batch_context = payload["context"]
    else:
        messages = [payload]
    return await _publish(state, messages, forced, batch_context, source)


async def _publish(
    state: IngestState,
    messages: list[Any],
    forced: str | None,
    batch_context: dict[str, Any] | None,
    source: str,
) -> JSONResponse:
    mapping = state.segment_mapping
    try:
        known = await state.identities.lookup(users_to_look_up(messages, mapping, forced))
    except Exception as error:
        return _unavailable(error, "database")
    translated = translate(messages, mapping, known, forced=forced, batch_context=batch_context)
    result = accept(translated.events, source=source)
    rejected = list(translated.rejected)
    refused_calls: set[int] = set()
    for rejection in result.rejected:
        call = translated.indexes[rejection.index]
        refused_calls.add(call)
        origin = translated.origins[rejection.index].get(rejection.field, rejection.field)
        rejected.append(Rejection(call, origin, rejection.reason, rejection.event_id))
    rejected.sort(key=lambda r: r.index)
    links = {user: account for call, user, account in translated.links if call not in refused_calls}
    try:
        await state.identities.remember(links)
    except Exception as error:
        return _unavailable(error, "database")
    try:
        await state.producer.send_all(result.records)
    except (BrokerUnavailable, RecordRejected) as error:
        EVENTS_REJECTED.labels("broker_unavailable").inc(len(result.records))
        return _unavailable(error, "broker")
    for event_type, count in Counter(result.types).items():
        EVENTS_ACCEPTED.labels(event_type).inc(count)
    for rejection in rejected:
        EVENTS_REJECTED.labels(reason_label(rejection.reason)).inc()
    if not rejected:
        return JSONResponse({"success": True})
    accepted = len(result.records) + translated.identifies
    code = status.HTTP_422_UNPROCESSABLE_CONTENT if accepted == 0 else 400
    return JSONResponse(
        {
            "success": False,
            "code": "invalid_events",
            "message": f"{len(rejected)} of {len(messages)} calls refused; "
            f"{accepted} accepted (see 'rejected')",
            "accepted": accepted,
            "rejected": [r.as_json() for r in rejected],
        },
        status_code=code,
    )


def _unavailable(error: Exception, what: str) -> JSONResponse:
    if what == "database" and not is_transient(error):
        raise error
    log.warning("%s unavailable: %s", what, type(error).__name__)
    return _failure(
        503,
        f"the {what} did not answer; nothing was accepted, retry with the same messageIds",
    )


def _route(path: str, forced: str | None, summary: str) -> None:
    @router.post(
        path,
        response_model=SegmentSuccess,
        responses=RESPONSES,
        summary=summary,
        openapi_extra=BODY,
        name=f"segment_{forced or 'batch'}",
    )
    async def handler(request: Request, state: StateDep, settings: SettingsDep) -> JSONResponse:
        return await _handle(request, forced, state, settings)


_route("/batch", None, 'Segment batch: {"batch": [calls], "writeKey"?} (≤ 1000 calls, ≤ 1 MiB)')
_route("/track", "track", "Segment track call")
_route("/identify", "identify", "Segment identify call (links userId to an account)")
_route("/group", "group", "Segment group call (becomes account_update)")
_route("/page", "page", "Segment page call (becomes web_visit)")
