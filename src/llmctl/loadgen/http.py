"""A small HTTP/1.1 client on asyncio streams: keep-alive connections, chunked bodies, nothing else.

Why not httpx: a load generator's own cost per streamed token must stay far below the server's, and
httpx spends tens of microseconds per chunk in its layers. Here one `read()` of the socket yields every
complete chunk it holds, so a burst of SSE events costs one await. No redirects, no proxies, no cookies:
the benchmark talks to the URL it was given and nothing else.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from llmctl.errors import InvalidInput

HEADER_LIMIT = 64 * 1024
"""Largest status line + headers accepted: a server that sends more is not an OpenAI endpoint."""

READ_SIZE = 64 * 1024


class ProtocolError(Exception):
    """The server broke HTTP/1.1 framing (or closed the connection mid-response)."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host, port, a path prefix, and headers every request carries."""

    scheme: str
    host: str
    port: int
    prefix: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    ssl: ssl_module.SSLContext | None = field(default=None, compare=False)

    @property
    def base_url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.prefix}"

    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.scheme == "https" else 80) else f"{host}:{self.port}"


def parse_endpoint(url: str, *, api_key: str | None = None) -> Endpoint:
    """`http://host:port[/prefix]` → Endpoint. A trailing `/v1` (or `/v1/`) is dropped: the paths are added
    per request. Credentials in the URL are refused (they would end up in the result JSON)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"not an http(s) URL: {url!r}", hint="e.g. http://127.0.0.1:11434")
    if parts.username or parts.password:
        raise InvalidInput("credentials in the URL are not accepted", hint="pass --api-key instead")
    if parts.query or parts.fragment:
        raise InvalidInput(f"the URL must not have a query or fragment: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidInput(f"bad port in {url!r}") from exc
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[: -len("/v1")]
    headers: tuple[tuple[str, str], ...] = ()
    if api_key:
        if any(c in api_key for c in "\r\n"):
            raise InvalidInput("the API key must be one line")
        headers = (("Authorization", f"Bearer {api_key}"),)
    context = ssl_module.create_default_context() if parts.scheme == "https" else None
    return Endpoint(parts.scheme, parts.hostname, port, prefix, headers, context)


class Response:
    """Status, lower-cased headers, and the body as it arrives (`pieces()`), read once."""

    def __init__(self, conn: "Connection", status: int, headers: dict[str, str]) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers
        self.complete = False

    async def pieces(self) -> AsyncIterator[bytes]:
        """Body bytes, one item per socket read (chunked framing removed)."""
        reader = self.conn.reader
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            decoder = ChunkedDecoder()
            while not decoder.done:  # read() returns what the header read already buffered first
                data = await reader.read(READ_SIZE)
                if not data:
                    raise ProtocolError("connection closed in the middle of a chunked body")
                out = decoder.feed(data)
                if out:
                    yield out
            self.complete = True
            return
        length = self.headers.get("content-length")
        if length is not None:
            try:
                left = int(length)
            except ValueError as exc:
                raise ProtocolError(f"bad Content-Length {length!r}") from exc
            while left > 0:
                data = await reader.read(min(left, READ_SIZE))
                if not data:
                    raise ProtocolError("connection closed before the whole body arrived")
                left -= len(data)
                yield data
            self.complete = True
            return
        self.conn.reusable = False  # body ends with the connection
        while data := await reader.read(READ_SIZE):
            yield data
        self.complete = True

    async def read(self, limit: int) -> bytes:
        """The whole body, refusing more than `limit` bytes."""
        out = bytearray()
        async for piece in self.pieces():
            out += piece
            if len(out) > limit:
                self.conn.reusable = False
                raise ProtocolError(f"response body over {limit} bytes")
        return bytes(out)


class ChunkedDecoder:
    """Incremental `Transfer-Encoding: chunked` decoder over a byte buffer."""

    SIZE_LINE_LIMIT = 1024

    def __init__(self) -> None:
        self.buf = bytearray()
        self.left = 0  # bytes of the current chunk still to come
        self.state = "size"
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while not self.done:
            if self.state == "data":
                take = min(self.left, len(self.buf))
                if not take:
                    break
                out += self.buf[:take]
                del self.buf[:take]
                self.left -= take
                if self.left == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    break
                if self.buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del self.buf[:2]
                self.state = "size"
            else:  # "size" or "trailer": one line
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > self.SIZE_LINE_LIMIT:
                        raise ProtocolError("chunk size line too long")
                    break
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                if self.state == "trailer":
                    self.done = not line
                    continue
                try:
                    self.left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise ProtocolError(f"bad chunk size line {line[:40]!r}") from exc
                self.state = "data" if self.left else "trailer"
        return bytes(out)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True
        self.used = False

    def close(self) -> None:
        self.reusable = False
        self.writer.close()

    async def send(self, endpoint: Endpoint, method: str, path: str, body: bytes | None,
                   accept: str = "application/json") -> Response:
        head = [f"{method} {endpoint.prefix}{path} HTTP/1.1", f"Host: {endpoint.host_header()}",
                f"Accept: {accept}", "User-Agent: llmctl-bench"]
        head += [f"{k}: {v}" for k, v in endpoint.headers]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await self.writer.drain()
        self.used = True
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError(f"response headers over {HEADER_LIMIT} bytes") from exc
        return self._parse_head(raw)

    def _parse_head(self, raw: bytes) -> Response:
        lines = raw.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 response: {lines[0][:60]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:60]!r}")
            headers[name.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close" or status_line[0] == "HTTP/1.0":
            self.reusable = False
        return Response(self, int(status_line[1]), headers)


class Pool:
    """Keep-alive connections to one endpoint, at most one request on each at a time."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.idle: list[Connection] = []

    async def _open(self) -> Connection:
        ep = self.endpoint
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ep.host, ep.port, ssl=ep.ssl, limit=HEADER_LIMIT), self.connect_timeout)
        return Connection(reader, writer)

    @asynccontextmanager
    async def request(self, method: str, path: str, body: bytes | None = None,
                      accept: str = "application/json") -> AsyncIterator[Response]:
        """Send and yield the response; the connection goes back to the pool when its body was read whole.

        A pooled connection the server closed while idle fails before any byte of an answer: that one
        request is retried once on a fresh connection (it never reached the server)."""
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await self._open()
        try:
            resp = await conn.send(self.endpoint, method, path, body, accept)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            conn.close()
            if not reused or isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            conn = await self._open()
            resp = await conn.send(self.endpoint, method, path, body, accept)
        try:
            yield resp
        except BaseException:
            conn.close()
            raise
        if resp.complete and conn.reusable:
            self.idle.append(conn)
        else:
            conn.close()

    async def connect(self) -> None:
        """Open one connection now (it waits in the pool): an unreachable endpoint fails here, clearly."""
        self.idle.append(await self._open())

    async def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
