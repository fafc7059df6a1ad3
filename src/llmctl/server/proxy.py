"""Talking to one engine: streaming without buffering, and cancelling upstream when the client leaves.

Throughput matters here (every cycle the gateway burns per token is one the engine's host loses, and one
event loop relays every stream), so the streaming path is bytes in, bytes out: `UpstreamStream.reads` gives
what each socket read completed, de-chunked, and relays write it on as one piece (one write per read, not
per event); events are split (`batches`, `sse.payloads`) only where a translator needs them, and token
events are read without a JSON parse (`sse.piece`). `docs/benchmarks.md` (Gateway relay capacity) has the
cost per token.

Cancellation: `EventStream` watches for the client's `http.disconnect` while it streams (Starlette only
notices a gone client at its next write, which in a long prompt evaluation may be seconds away). When the
client goes, the body generator is cancelled, which closes the upstream response; llama-server sees its
socket close and frees the slot.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llmctl.server.enginepool import EnginePool

# Piece, parse_piece and UpstreamError live in `sse` (the event level) and are named here too, where the
# translators have always found them
from llmctl.server.sse import Piece, UpstreamError, parse_piece, payloads, split_complete  # noqa: F401

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


def make_client() -> httpx.AsyncClient:
    """One pooled client per gateway. No read timeout: a long generation is not an error.

    Idle connections expire after 2 s, before llama-server's HTTP library drops them (5 s), so a pooled
    connection is not reused just as the engine closes it.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=5.0),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=2.0),
        trust_env=False,
    )


# Failures that happen before the engine saw the request (a pooled connection it had just closed):
# safe to send again on a fresh connection.
_RETRYABLE = (httpx.RemoteProtocolError, httpx.ConnectError, httpx.WriteError, httpx.ReadError)


async def _send(client: httpx.AsyncClient, url: str, body: Mapping[str, Any], *, stream: bool,
                headers: Mapping[str, str] | None = None) -> httpx.Response:
    for attempt in range(3):
        try:
            return await client.send(client.build_request("POST", url, json=body, headers=headers), stream=stream)
        except _RETRYABLE as exc:
            if attempt == 2:
                raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
            await asyncio.sleep(0.01 * (attempt + 1))
        except httpx.TransportError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
    raise AssertionError("unreachable")


def _error_from(status: int, raw: bytes) -> UpstreamError:
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            return UpstreamError(str(err.get("message") or err), status, err.get("type"))
        return UpstreamError(str(err), status)
    except ValueError:
        return UpstreamError(raw.decode("utf-8", "replace")[:500] or f"HTTP {status}", status)


async def post_json(client: httpx.AsyncClient, url: str, body: Mapping[str, Any],
                    headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """POST `body` to an engine (with its `headers`: the engine's key) and return its JSON answer."""
    resp = await _send(client, url, body, stream=False, headers=headers)
    if resp.status_code != 200:
        raise _error_from(resp.status_code, resp.content)
    try:
        return resp.json()
    except ValueError:
        raise UpstreamError("the engine answered with something that is not JSON", 502) from None


class _EngineSocket(asyncio.Protocol):
    """The engine connection's bytes, appended to one buffer as they arrive, for one reader.

    A bare Protocol instead of asyncio's StreamReader: one copy and one wake-up per read, no Python-level
    read() bookkeeping; this runs once per token per stream. Reading pauses while `HIGH` bytes wait unread
    (the client is slower than the engine), as StreamReader's limit does.
    """

    HIGH = 1 << 20

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > self.HIGH and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def more(self) -> bool:
        """Wait for bytes beyond what `buf` holds now; False when the engine closed the connection instead."""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        size = len(self.buf)
        while len(self.buf) == size:
            if self.closed:
                if self.error is not None:
                    raise UpstreamError(f"{type(self.error).__name__}: {self.error}")
                return False
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UpstreamStream:
    """One streamed response from an engine, read straight off its socket.

    httpx costs ~150 µs of CPU per streamed event here (measured on the 2-core CI machine), and on
    such a machine every cycle the gateway burns is a cycle llama-server does not get. This reader does
    the little HTTP/1.1 a loopback llama-server needs (status line, headers, chunked body). With a `pool`
    (`enginepool.EnginePool`), a response read to its last chunk gives its connection back for the next
    request; any other end closes it (and so frees the engine's slot).
    """

    def __init__(self, sock: _EngineSocket, chunked: bool, pool: EnginePool | None = None, base: str = "") -> None:
        self._sock = sock
        self._chunked = chunked
        self._pool = pool
        self._base = base
        self._complete = False  # the body's last chunk and its CRLF were read, nothing after them
        self._closed = False

    async def aclose(self) -> None:
        """Close the connection (llama-server notices at its next write and frees the slot), or, when the
        answer was read to its end and a pool keeps connections, hand it back. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._complete and self._pool is not None and not self._sock.buf:
            self._pool.give(self._base, self._sock)
        else:
            self._sock.close()

    async def reads(self) -> AsyncIterator[bytes]:
        """The body as it arrives: per socket read, the payload bytes of the chunks it completed (never empty).

        Everything one read brings leaves as one piece, so a relay writes once per read, not once per event:
        when the gateway falls behind, reads grow and the cost per token falls instead of a queue growing.
        """
        sock = self._sock
        buf = sock.buf
        try:
            if not self._chunked:
                while buf or await sock.more():
                    data = bytes(buf)
                    buf.clear()
                    yield data
                return
            while True:
                out, pos = [], 0
                while (eol := buf.find(b"\r\n", pos)) >= 0:
                    size = _chunk_size(buf, pos, eol)
                    if size == 0:
                        if buf[eol + 2:eol + 4] == b"\r\n":  # no trailers: the connection may serve again
                            del buf[:eol + 4]
                            self._complete = True
                        if out:
                            yield b"".join(out)
                        return
                    end = eol + 2 + size
                    if len(buf) < end + 2:
                        break
                    out.append(bytes(buf[eol + 2:end]))
                    pos = end + 2
                if pos:
                    del buf[:pos]
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                if not await sock.more():
                    raise UpstreamError("the engine closed the connection mid-answer")
        except OSError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None

    async def read_all(self) -> bytes:
        parts = [piece async for piece in self.reads()]
        return b"".join(parts)

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """The payloads (`data: X` -> X) of the complete SSE events each read brought. Closes the connection
        at the end. An `error:` line raises UpstreamError."""
        pending = b""
        try:
            async for data in self.reads():
                block, pending = split_complete(pending, data)
                if block:
                    yield payloads(block)
        finally:
            await self.aclose()

    async def events(self) -> AsyncIterator[bytes]:
        """The payloads of the SSE events one by one, as they arrive. Closes the connection at the end."""
        async for batch in self.batches():
            for payload in batch:
                yield payload


def _chunk_size(buf: bytearray, start: int, eol: int) -> int:
    line = bytes(buf[start:eol])
    try:
        return int(line.split(b";", 1)[0] if b";" in line else line, 16)
    except ValueError:
        raise UpstreamError("the engine sent a malformed chunked body") from None


async def open_stream(url: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None,
                      pool: EnginePool | None = None) -> UpstreamStream:
    """POST `body` to an engine (with its `headers`: the engine's key) and wait for the response head; errors
    before the first byte raise here. With a `pool`, on a kept-alive connection when one is idle (sent once
    more on a fresh one if the engine had closed it), else on a fresh one that may be kept afterwards."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = json.dumps(body, ensure_ascii=False).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    close = "" if pool is not None else "Connection: close\r\n"
    request = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
               f"Accept: text/event-stream\r\n{extra}Content-Length: {len(payload)}\r\n{close}\r\n").encode() + payload
    sock = pool.take(parts.netloc) if pool is not None else None
    if sock is not None:
        try:
            return await _exchange(sock, request, pool, parts.netloc)
        except _Stale:
            pass  # the engine had closed it: once more on a fresh connection
    sock = _EngineSocket()
    try:
        await asyncio.get_running_loop().create_connection(lambda: sock, host, port)
    except OSError as exc:
        raise UpstreamError(f"cannot connect to the engine: {exc.strerror or exc}") from None
    try:
        return await _exchange(sock, request, pool, parts.netloc)
    except _Stale:
        raise UpstreamError("the engine closed the connection without answering") from None


class _Stale(Exception):
    """The connection closed before a byte of the answer came: the engine never took the request."""


async def _exchange(sock: _EngineSocket, request: bytes, pool: EnginePool | None, base: str) -> UpstreamStream:
    """Send `request` on `sock` and read the response head; the connection is closed on any failure."""
    try:
        assert sock.transport is not None
        sock.transport.write(request)
        buf = sock.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > 1 << 16:
                raise UpstreamError("the engine sent an oversized response head")
            try:
                more = await sock.more()
            except UpstreamError:
                more = False
            if not more:
                if not buf:
                    raise _Stale()
                raise UpstreamError("the engine closed the connection without answering")
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[:end + 4]
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise UpstreamError(f"the engine sent a malformed status line: {lines[0][:80]!r}") from None
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        keep = pool is not None and headers.get("connection", "").lower() != "close"
        stream = UpstreamStream(sock, "chunked" in headers.get("transfer-encoding", "").lower(),
                                pool if keep else None, base)
        if status != 200:
            raw = await stream.read_all()
            raise _error_from(status, raw)
        return stream
    except OSError as exc:
        sock.close()
        raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
    except BaseException:
        sock.close()
        raise


async def _wait_disconnect(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work` unless the client disconnects first; then cancel it (closing upstream) and raise."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    raise ClientGone()


class EventStream(Response):
    """A streaming response that also listens for the client leaving, and always runs `on_close`."""

    def __init__(self, body: AsyncIterator[bytes], *, media_type: str, on_close: Callable[[bool], None],
                 headers: Mapping[str, str] | None = None) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.on_close = on_close
        self.init_headers(dict(headers or {}))

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streamer = asyncio.ensure_future(self._stream(send))
        listener = asyncio.ensure_future(_wait_disconnect(receive))
        completed = False
        try:
            done, _ = await asyncio.wait({streamer, listener}, return_when=asyncio.FIRST_COMPLETED)
            if streamer in done:
                exc = streamer.exception()
                completed = exc is None
                if exc is not None and not isinstance(exc, OSError):
                    raise exc
        finally:
            for task in (streamer, listener):
                task.cancel()
            await asyncio.gather(streamer, listener, return_exceptions=True)
            try:
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
            except Exception:
                pass
            self.on_close(not completed)
