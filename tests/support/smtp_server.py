"""A real local SMTP server (aiosmtpd) that keeps what it receives.

    async with recording_smtp_server() as smtp:
        sender = SmtpSender.from_url(f"smtp://{smtp.host}:{smtp.port}", sender="k@example.com")
        ...
        [message] = await smtp.wait_for(1)
        message["Subject"], message.get_body(("plain",)).get_content()

`respond_with(["451 4.3.0 Try later", "550 5.1.1 No such user"])` makes the next DATA
commands fail with those replies. `auth=("user", "pass")` turns on AUTH LOGIN/PLAIN (over
plain TCP, which is only acceptable because this is a test server on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: list[str]
    login: str | None


class _Handler:
    def __init__(self, server: RecordingSmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.server._lock:
            if self.server._replies:
                return self.server._replies.pop(0)
            # SMTP carries CRLF; plain newlines make `get_content()` compare like the source text.
            content = envelope.content.replace(b"\r\n", b"\n")
            message = BytesParser(policy=policy.default).parsebytes(content)
            login = session.auth_data.login.decode() if session.auth_data else None
            self.server.messages.append(message)  # type: ignore[arg-type]
            self.server.envelopes.append(
                Envelope(envelope.mail_from, list(envelope.rcpt_tos), login)
            )
        return "250 OK"


class RecordingSmtpServer:
    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port(self.host)
        # aiosmtpd runs its own loop in a thread: everything shared goes through this lock.
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self._replies: list[str] = []
        kwargs: dict[str, Any] = {}
        if auth is not None:
            # AUTH is offered, not required: requiring it without TLS makes aiosmtpd warn.
            kwargs = {"authenticator": _authenticator(*auth), "auth_require_tls": False}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def respond_with(self, replies: Iterable[str]) -> None:
        """Answer the next DATA commands with these SMTP replies instead of 250."""
        with self._lock:
            self._replies.extend(replies)

    # The explicit timeout is the agreed API: callers wait for N messages, never forever.
    async def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                with self._lock:
                    if len(self.messages) >= count:
                        return list(self.messages)
                await asyncio.sleep(0.01)

    async def start(self) -> None:
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._controller.stop)


def _authenticator(user: str, password: str) -> Any:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    return authenticate


def _free_port(host: str) -> int:
    # aiosmtpd's Controller checks readiness by connecting to its port, so it needs a real
    # number up front rather than port 0; the tiny race with other processes is acceptable.
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def recording_smtp_server(
    auth: tuple[str, str] | None = None,
) -> AsyncIterator[RecordingSmtpServer]:
    server = RecordingSmtpServer(auth)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
