"""Kept-alive engine connections for streamed requests, a few per engine, reused in turn.

A fresh loopback TCP connection per streamed request costs the gateway ~30-40 µs of CPU (connect, the
handshake's kernel work, the close) on top of ~20 µs for the request itself, and when 64 requests arrive at
once they are admitted one after another on one event loop: every µs of that delays the last one's arrival at
the engine (`bench/admission.py`). So a stream whose answer ended cleanly (the chunked body's last chunk read,
no `Connection: close`) gives its connection back here, and the next request to the same engine takes it.

Bounded and conservative, because llama-server's HTTP library holds one worker thread per open connection:
- at most `max_idle` idle connections per engine (the gateway's `--parallel`): never more open connections
  than requests were in flight at once;
- an idle connection is used again only within `IDLE_SECONDS` (llama-server drops idle ones after 5 s), and
  never if the engine closed it meanwhile or sent bytes nobody asked for; a timer closes it once that has
  passed, so an idle connection holds an engine thread for at most `IDLE_SECONDS` after a burst. (The pinned
  llama-server keeps `max(-np + 4, cores - 1)` HTTP threads and starts up to 1,024 more on demand
  (tools/server/server-http.cpp), so kept connections never make other requests wait for a thread; an older
  build with a fixed pool of `-np` + 2 would still have two left for non-streamed requests and probes);
- a stream that ends any other way (client gone, engine error, an answer not read to its end) closes its
  connection, so cancelling a request still frees the engine's slot at once;
- `drop(base)` closes an engine's idle connections when it is unloaded; `close()` all of them.
A request on a reused connection that the engine closed before answering is sent once more on a fresh one
(`proxy.open_stream`), as HTTP clients do with kept-alive connections.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Protocol

IDLE_SECONDS = 2.0


class Reusable(Protocol):
    buf: bytearray
    closed: bool

    def close(self) -> None: ...


class EnginePool:
    """Idle connections by engine address (`host:port`)."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max(0, max_idle)
        self._idle: dict[str, deque[tuple[float, Any]]] = {}
        self.reused = 0  # requests sent on a kept-alive connection (tests and benchmarks read it)
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, base: str) -> Any | None:
        """A live idle connection to `base`, or None (the caller opens one)."""
        idle = self._idle.get(base)
        now = time.monotonic()
        while idle:
            at, sock = idle.pop()  # the most recently used: the least likely to be stale
            if sock.closed or sock.buf or now - at > IDLE_SECONDS:
                sock.close()
                continue
            self.reused += 1
            return sock
        return None

    def give(self, base: str, sock: Reusable) -> None:
        """Keep `sock` for the next request to `base`, or close it when the engine already has enough."""
        idle = self._idle.setdefault(base, deque())
        now = time.monotonic()
        while idle and now - idle[0][0] > IDLE_SECONDS:  # the oldest first: they would only go stale here
            idle.popleft()[1].close()
        if sock.closed or sock.buf or len(idle) >= self.max_idle:
            sock.close()
            return
        idle.append((now, sock))
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._sweep)

    def _sweep(self) -> None:
        """Close what has been idle too long; again later while anything is kept."""
        self._sweeper = None
        now = time.monotonic()
        for base, idle in list(self._idle.items()):
            while idle and now - idle[0][0] >= IDLE_SECONDS:
                idle.popleft()[1].close()
            if not idle:
                del self._idle[base]
        if self._idle:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_SECONDS / 2, self._sweep)

    def drop(self, base: str) -> None:
        for _, sock in self._idle.pop(base, ()):
            sock.close()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for base in list(self._idle):
            self.drop(base)
