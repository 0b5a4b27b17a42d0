"""A real local HTTP server standing in for Slack's incoming webhooks and for a team's
`webhook` receiver (a CRM's endpoint).

It records every request and answers 200 "ok" unless a path was told otherwise::

    async with recording_webhook_server() as hooks:
        hooks.respond_with("/hook", [429, 500, Reply(404, "no_team")])
        url = hooks.url("/hook")
        ...
        await hooks.wait_for(3, timeout=5)

A path told `verify_signatures(path, secret)` checks each request as a receiver would, with
the Standard Webhooks library's `Webhook.verify` (headers, timestamp within 5 minutes,
HMAC of "id.timestamp.body"): a request that fails is answered 401 and recorded with
`verified=False`, before any reply queued for the path.

HTTP/1.1 with keep-alive and Content-Length bodies only: what httpx sends, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from kizashi.tools.tinyhttp import ConnectionServer, read_request

# What Slack answers with each status (its real body texts).
SLACK_BODIES = {
    200: "ok",
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
REASONS |= {410: "Gone"}
REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering, to make a client time out.
    delay: float = 0.0

    def resolved(self) -> Reply:
        headers = dict(self.headers)
        if self.status == 429:
            headers.setdefault("Retry-After", "1")
        body = self.body if self.body is not None else SLACK_BODIES.get(self.status, "")
        return Reply(self.status, body, headers, self.delay)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int
    at: float
    # Set on a path that verifies signatures: whether this request's signature verified.
    verified: bool | None = None

    def __getitem__(self, key: str) -> Any:
        # Lets a test read `requests[0]["blocks"]` as if it were the JSON body.
        return self.json[key]


class RecordingWebhookServer(ConnectionServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        # Requests with a delayed reply whose client hung up before it: never answered.
        self.unanswered: list[RecordedRequest] = []
        self._replies: dict[str, list[Reply]] = {}
        self._verifiers: dict[str, Webhook] = {}
        self._changed = asyncio.Condition()

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def respond_with(self, path: str, replies: Iterable[int | Reply]) -> None:
        """Answer the next requests to `path` with these, in order; then 200 again."""
        queue = self._replies.setdefault(path, [])
        queue.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def verify_signatures(self, path: str, secret: str) -> None:
        """Verify every request to `path` with this `whsec_` secret (see the module doc)."""
        self._verifiers[path] = Webhook(secret)

    def _verified(self, path: str, headers: dict[str, str], body: bytes) -> bool | None:
        verifier = self._verifiers.get(path)
        if verifier is None:
            return None
        try:
            verifier.verify(body, headers)
        except (WebhookVerificationError, ValueError):
            # ValueError: a signature header that is not "version,base64".
            return False
        return True

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def answered_to(self, path: str) -> list[RecordedRequest]:
        """Requests to `path` that got their reply (not those whose client hung up first)."""
        gone = {id(r) for r in self.unanswered}
        return [r for r in self.requests_to(path) if id(r) not in gone]

    # The explicit timeout is the agreed API: callers wait for N requests, never forever.
    async def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await read_request(reader):
            verified = self._verified(request.target, request.headers, request.body)
            if verified is False:
                reply = Reply(401, "signature did not verify")
            else:
                queue = self._replies.get(request.target)
                reply = (queue.pop(0) if queue else Reply()).resolved()
            record = await self._record(
                request.method,
                request.target,
                request.headers,
                request.body,
                reply.status,
                verified,
            )
            if reply.delay:
                await asyncio.sleep(reply.delay)
                if reader.at_eof():
                    # The client went away (e.g. its process was killed) before the answer.
                    self.unanswered.append(record)
                    break
            writer.write(_response(reply))
            await writer.drain()
            if request.headers.get("connection", "").lower() == "close":
                break

    async def _record(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        status: int,
        verified: bool | None = None,
    ) -> RecordedRequest:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            method, path, headers, body, parsed, status, time.monotonic(), verified
        )
        async with self._changed:
            self.requests.append(record)
            self._changed.notify_all()
        return record


def _response(reply: Reply) -> bytes:
    body = (reply.body or "").encode()
    lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
    headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
    headers |= reply.headers
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@contextlib.asynccontextmanager
async def recording_webhook_server() -> AsyncIterator[RecordingWebhookServer]:
    server = RecordingWebhookServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
