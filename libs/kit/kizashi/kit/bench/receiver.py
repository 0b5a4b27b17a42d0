"""The bench's stand-in for Slack: a minimal HTTP/1.1 server (keep-alive, Content-Length
bodies) answering 200 "ok" and noting when each message arrived, on `time.monotonic()`."""

import asyncio
import time
from dataclasses import dataclass

import orjson

# Each alert owner gets a webhook of its own: the notifier paces every webhook to ~1 message a
# second (Slack's limit), so a single shared webhook would measure that pacing, not the pipeline.
ALERT_OWNERS = 64


# --- the Slack stand-in ----------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the request was read
    path: str
    delivery_id: str | None
    text: str


class AlertReceiver:
    """A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) answering 200 "ok"."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.arrivals: list[Arrival] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    def url(self, path: str = "/slack") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while request_line := (await reader.readline()).strip():
                target = request_line.split(b" ")[1].decode("latin-1")
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                arrived = time.monotonic()
                try:
                    text = str(orjson.loads(body).get("text", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    text = body.decode("utf-8", "replace")
                self.arrivals.append(
                    Arrival(arrived, target, headers.get("x-kizashi-delivery-id"), text)
                )
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._handlers.discard(task)
            writer.close()


def routing_yaml(receiver: AlertReceiver, owners: int = ALERT_OWNERS) -> str:
    lines = [
        "receivers:",
        "  - name: slack",
        "    type: slack",
        "    webhook_url_env: KIZASHI_SLACK_WEBHOOK_URL",
        "    by_owner:",
        *(f'      "@bench-owner-{k}": {receiver.url(f"/owner/{k}")}' for k in range(owners)),
        "routes: []",
        "default:",
        "  receivers: [slack]",
    ]
    return "\n".join(lines) + "\n"
