"""How every service's HTTP server runs (`kizashi serve`, and the ingest bench): uvicorn with
limits for slow or greedy clients (architecture §5.11).

uvicorn's httptools protocol limits neither how long a client may take to send its headers
nor how large they are (`h11_max_incomplete_event_size` binds only the pure-Python h11
parser). `GuardedHttpToolsProtocol` adds both:
- headers must be complete within `http_header_timeout_s` of the connection opening, or of the
  first byte of the next request on a kept-alive connection; else 408 and the connection
  closes;
- the request line and headers may hold at most `http_max_header_bytes`; else 431 and the
  connection closes (counted as they arrive, so an endless header is cut off too).
The request body has its deadline in the app (`http_body_timeout_s`,
kizashi.runtime.http.RequestMetricsMiddleware); idle kept-alive connections close after
`http_keep_alive_s` (uvicorn's own timer).
"""

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kizashi.runtime.settings import Settings


class _HeaderOverflow(Exception):
    pass


def _answer(status_line: bytes, error: str, detail: str) -> bytes:
    body = orjson.dumps({"error": error, "detail": detail})
    return b"".join(
        (
            status_line,
            b"content-type: application/json\r\nconnection: close\r\n",
            b"content-length: %d\r\n\r\n" % len(body),
            body,
        )
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a header deadline and a header size limit (class attributes, set by
    `guarded_protocol`)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._reading_headers = False
        self._header_overflow = False
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._reading_headers = True
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._header_overflow:
            super().send_400_response(msg)
            return
        self.transport.write(
            _answer(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
                "headers_too_large",
                f"the request line and headers are larger than {self.max_header_bytes} bytes",
            )
        )
        self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            # Raised inside the parser's callback: uvicorn's data_received turns it into
            # send_400_response, which answers 431 instead.
            self._header_overflow = True
            raise _HeaderOverflow

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        # An idle connection that never started a request just closes; one caught halfway
        # through its headers is told why.
        if self._reading_headers:
            self.transport.write(
                _answer(
                    b"HTTP/1.1 408 Request Timeout\r\n",
                    "timeout",
                    f"the request headers did not arrive within {self.header_timeout_s:g} s",
                )
            )
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": settings.http_header_timeout_s,
            "max_header_bytes": settings.http_max_header_bytes,
        },
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run`/`uvicorn.Config` that bound slow clients."""
    return {
        "http": guarded_protocol(settings),
        "timeout_keep_alive": settings.http_keep_alive_s,
        # Binds the h11 parser the same way, should anyone run the app with `--http h11`.
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
    }
