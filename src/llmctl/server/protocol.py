"""uvicorn's httptools protocol with the read bounds it lacks: a header timeout, a body idle timeout, a
header size cap.

uvicorn closes idle keep-alive connections, but once a request's first byte arrives it waits forever for
the rest: one socket that sends half a header and stalls (slowloris) holds a connection, and a few thousand
hold the server. So, per connection:

- from a request's first byte (or the connection's opening) to its last header: LLMCTL_HEADER_TIMEOUT, then
  `408` and close;
- request line and headers larger than LLMCTL_MAX_HEADER_SIZE: `431` and close (httptools has no cap);
- while a body is being received, a silence longer than LLMCTL_BODY_TIMEOUT closes the connection (the
  route sees a disconnect). A pause on our side (flow control while a blob is written) is not silence.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmctl.settings import ServeLimits

log = logging.getLogger("llmctl.gateway")


def _plain(status: bytes, text: str) -> bytes:
    body = text.encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class BoundedHttpTools(HttpToolsProtocol):
    """Set `limits` on a subclass (`protocol_class`); uvicorn builds one instance per connection."""

    limits: ServeLimits = ServeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # between requests too: the next bytes are a request head
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far, to find a terminator split across reads
        self._in_body = False
        self._body_seen = 0.0  # loop time of the body's last bytes

    # -- connection ---------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = window[-3:]
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(b"431 Request Header Fields Too Large",
                             f"request headers are larger than {self.limits.max_header_bytes} bytes "
                             "(LLMCTL_MAX_HEADER_SIZE)")
                return
        elif self._in_body:
            self._body_seen = self.loop.time()
        super().data_received(data)

    # -- parser callbacks ---------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:  # the first byte of a request on a kept-alive connection
            self._arm(self.limits.header_timeout, self._header_timeout)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()
        self._in_body = True
        self._body_seen = self.loop.time()
        self._arm(self.limits.body_timeout, self._body_timeout)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._in_head, self._head_bytes, self._tail = True, 0, b""
        self._disarm()
        super().on_message_complete()

    # -- timers -------------------------------------------------------------------------------------------
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        if seconds > 0:
            self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes:  # a request began and never finished its head: say so before closing
            log.info("closed a connection that sent no complete request head in %gs (LLMCTL_HEADER_TIMEOUT)",
                     self.limits.header_timeout)
            self.transport.write(_plain(b"408 Request Timeout", "request headers took too long "
                                                               "(LLMCTL_HEADER_TIMEOUT)"))
        self.transport.close()

    def _body_timeout(self) -> None:
        self._timer = None
        if not self._in_body or self.transport.is_closing():
            return
        idle = self.loop.time() - self._body_seen
        if idle < self.limits.body_timeout:  # bytes came since the timer was set: wait for the rest
            self._arm(self.limits.body_timeout - idle, self._body_timeout)
            return
        if self.flow is not None and self.flow.read_paused:  # we are the slow side: wait for the route
            self._body_seen = self.loop.time()
            self._arm(self.limits.body_timeout, self._body_timeout)
            return
        log.info("closed a connection whose request body stalled for %gs (LLMCTL_BODY_TIMEOUT)",
                 self.limits.body_timeout)
        self.transport.close()

    def _refuse(self, status: bytes, text: str) -> None:
        self._disarm()
        self._in_head = False
        if not self.transport.is_closing():
            self.transport.write(_plain(status, text))
            self.transport.close()


def protocol_class(limits: ServeLimits) -> type[BoundedHttpTools]:
    """A protocol class bound to `limits`, for `uvicorn.Config(http=...)`."""
    return type("LlmctlHttpTools", (BoundedHttpTools,), {"limits": limits})
