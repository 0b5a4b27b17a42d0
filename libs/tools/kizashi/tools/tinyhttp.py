"""A small asyncio HTTP/1.1 server for local stand-ins of webhook receivers (the bench's Slack,
the tests' recording server): keep-alive connections, Content-Length bodies, and the handler
bookkeeping that lets `stop()` end connections a client keeps open."""

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> IncomingRequest | None:
    """The next request on a connection, or None when the client closed it."""
    request_line = await reader.readline()
    if not request_line.strip():
        return None
    method, target, _version = request_line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length") or 0))
    return IncomingRequest(method, target, headers, body)


class ConnectionServer:
    """Subclasses implement `handle(reader, writer)` for one connection."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Keep-alive connections (and delayed replies) outlive close(); end their handlers.
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels handlers; finishing quietly keeps asyncio from logging it.
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
