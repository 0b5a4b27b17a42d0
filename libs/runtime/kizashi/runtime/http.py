"""What every service's HTTP app shares: /healthz, /readyz, /metrics, request metrics,
request ids and error answers that never leak a stack trace."""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

from fastapi import FastAPI, Request
from fastapi import HTTPException as RouteHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizashi.contracts.text import error_reason
from kizashi.runtime.logs import request_id_var
from kizashi.runtime.metrics import HTTP_DURATION, HTTP_REQUESTS

log = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    408: "timeout",
    415: "unsupported_media_type",
    422: "invalid_request",
    431: "headers_too_large",
    503: "unavailable",
}

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class BodyTimeout(RouteHTTPException):
    """The request body did not arrive in time (raised from `receive`). FastAPI's own
    HTTPException, so that FastAPI's body parsing and the routes that catch it pass it on as
    the 408 it is, rather than a 400 "error parsing the body"."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(
            408,
            detail=f"the request body did not arrive within {limit_s:g} s",
            headers={"Connection": "close"},
        )


class RequestMetricsMiddleware:
    """The outermost layer of every request: its id (a client's X-Request-Id, or a new one),
    which every log line, every answer's X-Request-Id header and every error body carry; a
    deadline for the request body (uvicorn has none); the answer to an unhandled error (a 500
    naming the request id: Starlette's handler for `Exception` runs outside every middleware,
    where the id is no longer set); and request counts and durations by route template (never
    by raw path: ids stay out of labels)."""

    def __init__(self, app: ASGIApp, service: str, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.service = service
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status_code = 500
        started = time.perf_counter()
        response_started = False
        deadline = started + self.body_timeout_s
        body_done = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                status_code = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def receive_by_deadline() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(deadline - time.perf_counter()):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.body_timeout_s) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        try:
            await self.app(scope, receive_by_deadline, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if response_started:
                raise
            response = JSONResponse(
                {"error": "internal_error", "request_id": request_id}, status_code=500
            )
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(self.service, template, method, str(status_code)).inc()
            HTTP_DURATION.labels(self.service, template, method).observe(
                time.perf_counter() - started
            )
            request_id_var.reset(token)


class RejectNulMiddleware:
    """PostgreSQL text rejects U+0000 (architecture §5.11): a NUL in a path or query parameter would
    reach a query and fail there as a 500. Refuse it up front with a precise 400."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"").lower()
        ):
            response = JSONResponse(
                {"error": "bad_request", "detail": "the URL must not contain NUL (%00)"},
                status_code=400,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")[:64]
    return None


def validation_errors(error: RequestValidationError) -> list[dict]:
    return [
        {
            "field": ".".join(str(part) for part in item.get("loc", ()) if part != "body"),
            "reason": error_reason(item),
        }
        for item in error.errors()
    ]


def install_common_routes(
    app: FastAPI,
    *,
    service: str,
    readiness: ReadinessCheck,
    liveness: ReadinessCheck,
    body_timeout_s: float = 30.0,
) -> None:
    app.add_middleware(RejectNulMiddleware)
    # Added last, so it is the outermost: its request id covers every other layer's answers.
    app.add_middleware(RequestMetricsMiddleware, service=service, body_timeout_s=body_timeout_s)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": ERROR_CODES.get(error.status_code, "error"), "detail": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid_request", "errors": validation_errors(error)}, status_code=422
        )

    @app.get("/healthz", tags=["operations"], summary="The process is alive and progressing")
    async def healthz() -> JSONResponse:
        # A consumer can stay silently stuck after a broker restart (aiokafka #1154): an
        # orchestrator restarting the process on 503 here is the cure.
        checks = await liveness()
        alive = all(checks.values())
        return JSONResponse(
            {"status": "ok" if alive else "stuck", "service": service, "checks": checks},
            status_code=200 if alive else 503,
        )

    @app.get("/readyz", tags=["operations"], summary="Broker and database connections are up")
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    document_common_errors(app)


# The bodies of `_http_error` and `_invalid_request` above.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "required": ["error"],
}


def document_common_errors(app: FastAPI) -> None:
    """Put the answers every route can give into the OpenAPI schema, so that clients (and the
    schema fuzzer, tests/e2e/test_fuzz_openapi.py) find them documented: 400, 401 and 422 on the
    /v1 API (422 in this app's error shape, not FastAPI's default one), 404 where a path names
    a resource, 503 on the probes. Routes that document them keep theirs.
    """
    from fastapi.routing import APIRoute

    def error(route: APIRoute, description: str) -> dict:
        # Pages (e.g. the alert-link confirmations) answer their errors as pages too.
        response_class = getattr(route.response_class, "value", route.response_class)
        if getattr(response_class, "media_type", None) == "text/html":
            return {"description": description, "content": {"text/html": {"schema": {}}}}
        return {
            "description": description,
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }

    def api_routes(routes: list) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):  # an included router (FastAPI ≥ 0.16x)
                yield from api_routes(route.original_router.routes)

    for route in api_routes(app.routes):
        wanted: dict[int, str] = {}
        if route.path.startswith("/v1/"):
            wanted[400] = "Malformed request"
            wanted[401] = "Missing or invalid credentials"
            wanted[422] = "Invalid parameters or body (each field and reason)"
        if "{" in route.path:
            wanted[404] = "No such resource"
        if route.path in ("/healthz", "/readyz"):
            wanted[503] = "Not alive or not ready (see checks)"
        for code, description in wanted.items():
            if code not in route.responses and str(code) not in route.responses:
                route.responses[code] = error(route, description)
