"""The embedded mode's stand-ins for Slack and a mail server, so that a laptop with nothing
configured still sees alerts arrive. `kizashi up` prints each one and keeps a copy under
`<data dir>/inbox/`. Configure KIZASHI_SLACK_WEBHOOK_URL / KIZASHI_SMTP_URL for the real ones.
"""

import asyncio
import email
import email.policy
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)
MAX_WEBHOOK_BODY = 1024 * 1024


@dataclass
class DevInbox:
    directory: Path
    http_port: int
    smtp_port: int
    echo: bool = True
    _server: asyncio.AbstractServer | None = None
    _smtp: Controller | None = None

    @property
    def slack_webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/slack"

    @property
    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.smtp_port}"

    @property
    def slack_file(self) -> Path:
        return self.directory / "slack.jsonl"

    @property
    def email_file(self) -> Path:
        return self.directory / "email.jsonl"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_server(self._serve_http, "127.0.0.1", self.http_port)
        self._smtp = Controller(_MailHandler(self), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._smtp is not None:
            self._smtp.stop()

    def _record(self, path: Path, entry: dict, line: str) -> None:
        with path.open("ab") as out:
            out.write(orjson.dumps(entry) + b"\n")
        if self.echo:
            print(line, flush=True)

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = min(int(headers.get("content-length", "0") or 0), MAX_WEBHOOK_BODY)
            body = await reader.readexactly(length) if length else b""
            if request_line.startswith(b"POST "):
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError:
                    payload = {"text": body.decode("utf-8", "replace")}
                text = payload.get("text", "") if isinstance(payload, dict) else ""
                self._record(
                    self.slack_file,
                    {"received_at": datetime.now(UTC).isoformat(), "payload": payload},
                    f"\n[slack] {text}",
                )
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            else:
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


class _MailHandler:
    def __init__(self, inbox: DevInbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text_part = message.get_body(preferencelist=("plain",))
        self.inbox._record(
            self.inbox.email_file,
            {
                "received_at": datetime.now(UTC).isoformat(),
                "to": list(envelope.rcpt_tos),
                "subject": str(message["subject"]),
                "text": text_part.get_content() if text_part else "",
            },
            f"\n[email to {', '.join(envelope.rcpt_tos)}] {message['subject']}",
        )
        return "250 Message accepted for delivery"
