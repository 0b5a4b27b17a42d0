"""The bench's stand-in for Slack: a minimal HTTP/1.1 server (keep-alive, Content-Length
bodies) answering 200 "ok" and noting when each message arrived, on `time.monotonic()`."""

import asyncio
import time
from dataclasses import dataclass

import orjson

from kizashi.tools.tinyhttp import ConnectionServer, read_request

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


class AlertReceiver(ConnectionServer):
    """Answers every request 200 "ok" and notes its arrival."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.arrivals: list[Arrival] = []

    def url(self, path: str = "/slack") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await read_request(reader):
            arrived = time.monotonic()
            try:
                text = str(orjson.loads(request.body).get("text", ""))
            except (orjson.JSONDecodeError, AttributeError):
                text = request.body.decode("utf-8", "replace")
            delivery_id = request.headers.get("x-kizashi-delivery-id")
            self.arrivals.append(Arrival(arrived, request.target, delivery_id, text))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()


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
        # The bench measures the pipeline: every alert goes at once, none waits for a digest.
        "budget:",
        "  daily: unlimited",
    ]
    return "\n".join(lines) + "\n"
