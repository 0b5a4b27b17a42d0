"""The HTTP layer every service shares, on a real uvicorn server configured as `kizashi serve`
configures it (kizashi.runtime.server): slow headers, slow bodies, oversized headers, idle
connections, and the request id of a 500. The app is a FastAPI app with the common routes
and middleware (kizashi.runtime.http) and two routes of its own: one that reads the body and
one that fails."""

import asyncio
import logging
import time

import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel

from kizashi.runtime.http import install_common_routes
from kizashi.runtime.logs import JsonFormatter
from kizashi.runtime.server import uvicorn_options
from kizashi.runtime.settings import Settings
from kizashi.tools.embedded import free_port

LIMIT_S = 1.0
MAX_HEADER_BYTES = 8192


async def _ok() -> dict[str, bool]:
    return {"ok": True}


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    class Note(BaseModel):
        text: str

    @app.post("/v1/note")
    async def note(body: Note) -> dict:
        return {"length": len(body.text)}

    @app.get("/v1/fail")
    async def fail() -> dict:
        raise RuntimeError("a bug")

    install_common_routes(
        app,
        service="test",
        readiness=_ok,
        liveness=_ok,
        body_timeout_s=settings.http_body_timeout_s,
    )
    return app


@pytest.fixture
async def server():
    settings = Settings(
        http_header_timeout_s=LIMIT_S,
        http_body_timeout_s=LIMIT_S,
        http_keep_alive_s=LIMIT_S,
        http_max_header_bytes=MAX_HEADER_BYTES,
    )
    port = free_port()
    config = uvicorn.Config(
        _app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        **uvicorn_options(settings),
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    yield port
    running.should_exit = True
    await task


async def _exchange(port: int, *parts: bytes, pause_s: float = 0) -> tuple[bytes, float]:
    """Send the parts (pausing between them), then read until the server closes; what it
    answered and how long after the last part it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause_s)
        sent = time.monotonic()
        answer = b""
        async with asyncio.timeout(10 * LIMIT_S):
            while chunk := await reader.read(65536):
                answer += chunk
        return answer, time.monotonic() - sent
    finally:
        writer.close()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _body(answer: bytes) -> dict:
    return orjson.loads(answer.split(b"\r\n\r\n", 1)[1])


async def test_headers_sent_too_slowly_get_408_and_the_connection_closes(server):
    answer, closed_after = await _exchange(server, b"POST /v1/echo HTTP/1.1\r\nHost: x\r\n")
    assert _status(answer) == 408 and "headers did not arrive" in _body(answer)["detail"]
    assert closed_after < 3 * LIMIT_S


async def test_headers_trickled_byte_by_byte_still_meet_the_deadline(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        for byte in request:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
            if writer.is_closing() or reader.at_eof():
                break
        async with asyncio.timeout(10 * LIMIT_S):
            answer = await reader.read()
    except ConnectionResetError:
        answer = b"HTTP/1.1 408 reset"
    finally:
        writer.close()
    assert _status(answer) == 408
    assert time.monotonic() - started < 3 * LIMIT_S + 1


async def test_a_connection_that_sends_nothing_is_closed(server):
    answer, closed_after = await _exchange(server)
    assert answer == b"" and closed_after < 3 * LIMIT_S


@pytest.mark.parametrize("path", [b"/v1/echo", b"/v1/note"])
async def test_a_body_sent_too_slowly_gets_408_with_its_request_id(server, path):
    head = (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Request-Id: slow-body-1\r\nContent-Length: 1000\r\n\r\n"
    )
    answer, closed_after = await _exchange(server, head, b'{"partial": ')
    assert _status(answer) == 408, answer
    assert b"x-request-id: slow-body-1" in answer.lower()
    assert "body did not arrive" in _body(answer)["detail"]
    assert closed_after < 3 * LIMIT_S


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES + 1, 200_000])
async def test_headers_past_the_limit_get_431(server, size):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    try:
        answer, _ = await _exchange(server, head)
    except ConnectionResetError:  # closed while the rest of 200 KB was still arriving
        pytest.fail("the server reset the connection instead of answering 431")
    assert _status(answer) == 431
    assert _body(answer)["error"] == "headers_too_large"


async def test_requests_within_the_limits_are_served_and_kept_alive(server):
    request = (
        b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Fine: "
        + b"a" * (MAX_HEADER_BYTES // 2)
        + b"\r\n\r\nhello"
    )
    answer, closed_after = await _exchange(server, request, request, pause_s=0.2)
    assert answer.count(b"HTTP/1.1 200") == 2 and answer.count(b'{"bytes":5}') == 2
    # Then idle: closed by the keep-alive timeout.
    assert closed_after < 3 * LIMIT_S


async def test_a_500_names_the_request_id_its_log_line_shows(server, caplog):
    caplog.handler.setFormatter(JsonFormatter("test"))
    with caplog.at_level(logging.ERROR):
        answer, _ = await _exchange(
            server,
            b"GET /v1/fail HTTP/1.1\r\nHost: x\r\nX-Request-Id: boom-16\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert _status(answer) == 500
    assert _body(answer) == {"error": "internal_error", "request_id": "boom-16"}
    assert b"x-request-id: boom-16" in answer.lower()
    lines = [orjson.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]
    assert any(
        line.get("request_id") == "boom-16" and "a bug" in line.get("exc", "") for line in lines
    )

    generated, _ = await _exchange(
        server, b"GET /v1/fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    request_id = _body(generated)["request_id"]
    assert request_id and f"x-request-id: {request_id}".encode() in generated.lower()
