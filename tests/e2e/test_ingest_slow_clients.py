"""Slow clients against a real ingest server, started as deployed (`kizashi serve ingest`)
with short limits: a body that stops halfway gets 408 on both APIs, in each API's error shape,
and the connection closes; headers that never finish are cut off the same way."""

import asyncio
import os
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from kizashi.tools.embedded import free_port

pytestmark = pytest.mark.e2e

LIMIT_S = 1.0


@pytest.fixture
async def ingest(stack, database_url, bootstrap_servers):
    """One more ingest server, on the stack's (migrated) database and broker."""
    port = free_port()
    env = {
        **os.environ,
        "KIZASHI_DATABASE_URL": database_url,
        "KIZASHI_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KIZASHI_INGEST_KEYS": f"tests:{stack.ingest_key}",
        "KIZASHI_HOST": "127.0.0.1",
        "KIZASHI_INGEST_PORT": str(port),
        "KIZASHI_HTTP_HEADER_TIMEOUT_S": str(LIMIT_S),
        "KIZASHI_HTTP_BODY_TIMEOUT_S": str(LIMIT_S),
        "KIZASHI_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "kizashi.tools.cli", "serve", "ingest"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    ready = await client.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    if ready.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.returncode is None and time.monotonic() < deadline, "no ingest"
                await asyncio.sleep(0.2)
        yield port
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def _partial(port: int, head: bytes, part: bytes) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + part)
        await writer.drain()
        sent = time.monotonic()
        answer = b""
        async with asyncio.timeout(10 * LIMIT_S):
            while chunk := await reader.read(65536):
                answer += chunk
        return answer, time.monotonic() - sent
    finally:
        writer.close()


def _head(path: str, key: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    ).encode()


async def test_a_native_body_that_stops_halfway_gets_408(stack, ingest):
    answer, closed_after = await _partial(
        ingest, _head("/v1/events", stack.ingest_key), b'{"events": [{"type": '
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "timeout" and "body did not arrive" in body["detail"]
    assert closed_after < 3 * LIMIT_S


async def test_a_segment_body_that_stops_halfway_gets_408_in_segment_shape(stack, ingest):
    answer, closed_after = await _partial(
        ingest, _head("/v1/batch", stack.ingest_key), b'{"batch": [{"type": "track"'
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["success"] is False and body["code"] == "timeout"
    assert closed_after < 3 * LIMIT_S


async def test_headers_that_never_finish_are_cut_off(ingest):
    answer, closed_after = await _partial(ingest, b"POST /v1/events HTTP/1.1\r\n", b"Host: x")
    assert answer.startswith(b"HTTP/1.1 408") and closed_after < 3 * LIMIT_S
