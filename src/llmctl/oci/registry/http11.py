"""HTTP/1.1 for the registry client, on the standard library's `http.client`.

Why not httpx (which the rest of llmctl uses): a blob is one long body, and what costs is moving its bytes.
Streaming the 253 MB Gemma blob over loopback through httpx (httpcore + h11, a new `bytes` per read) took
0.42 s of CPU; `readinto` one reused buffer takes 0.27 s, and uploads go out with sendfile(2), never through
Python. Importing httpx also costs 35-120 ms of a command that takes well under a second.

What is here: keep-alive connections pooled per origin (thread-safe; a connection serves one request at a
time), responses read into the caller's buffer, file bodies sent with sendfile, redirects (Authorization is
dropped when the origin changes), connect and read timeouts, and four exceptions under `TransportError`
that `errors.py` turns into one-line messages (one of them, `UnknownHost`, says no retry can help). Auth,
retries and statuses are the client's business.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import ssl

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
DRAIN_LIMIT = 64 * 1024  # an unread body up to this size is read so the connection can be reused
SENDFILE_SLICE = 8 * 1024 * 1024  # progress and cancellation are checked between sendfile calls
MAX_IDLE = 16
MAX_SMALL_BODY = 4 * 1024 * 1024  # JSON answers: token, errors, manifests


class TransportError(Exception):
    """The exchange failed below HTTP: no response, or not all of it."""


class ConnectError(TransportError):
    """No connection: refused, unknown host, TLS handshake failed."""


class UnknownHost(ConnectError):
    """A host name that does not resolve: the name does not exist (EAI_NONAME) or has no address (EAI_NODATA).
    Asking again gives the same answer, so it is never retried; EAI_AGAIN (no answer from the DNS server)
    is transient and stays a plain ConnectError."""

    def __init__(self, host: str) -> None:
        super().__init__(f"cannot resolve {host}")
        self.host = host


# getaddrinfo's answers that no retry changes (EAI_NODATA is not defined everywhere)
_NO_SUCH_NAME = frozenset(getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n))


class Timeout(TransportError):
    pass


class ProtocolError(TransportError):
    """The connection closed early, or the peer sent something that is not HTTP/1.1."""


def connect_error(exc: BaseException, host: str) -> ConnectError:
    """A failure to connect to `host`: UnknownHost when its name does not resolve."""
    if isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_NAME:
        return UnknownHost(host)
    return ConnectError(str(exc) or type(exc).__name__)


def _wrap(exc: BaseException, *, connecting: str | None = None) -> TransportError:
    """`exc` as a TransportError; `connecting` is the host being connected to, if it was."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, TimeoutError):
        err: TransportError = Timeout(f"timed out ({exc})" if str(exc) else "timed out")
    elif connecting is not None:
        err = connect_error(exc, connecting)
    elif isinstance(exc, http.client.HTTPException):
        err = ProtocolError(str(exc) or type(exc).__name__)
    else:
        err = TransportError(str(exc) or type(exc).__name__)
    return err  # raised `from exc`: TLS errors are recognised through the cause chain


@dataclass
class FileBody:
    """`length` bytes of the file at `path` from `offset`. Sent again whole if the request is repeated."""

    path: Path | str
    offset: int
    length: int
    on_bytes: Callable[[int], None] | None = None
    check: Callable[[], None] | None = None  # raises to stop the upload (another transfer failed, Ctrl-C)


Body = bytes | FileBody | None


class _Conn(http.client.HTTPConnection):
    io_timeout: float | None = None

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.io_timeout)


class _TlsConn(http.client.HTTPSConnection):
    io_timeout: float | None = None

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.io_timeout)


Origin = tuple[str, str, int]


class Response:
    """Status and headers are read; the body streams through `readinto`/`read`. Always `close()` it."""

    def __init__(self, pool: "Transport", origin: Origin, conn: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse, url: str) -> None:
        self._pool, self._origin, self._conn, self._raw = pool, origin, conn, raw
        self.url = url
        self.status_code = raw.status
        self.reason_phrase = raw.reason
        self.headers = raw.msg  # case-insensitive .get()
        self._content: bytes | None = None

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Up to len(buf) bytes of the body; 0 at its end. An early end raises ProtocolError."""
        raw = self._raw
        try:
            n = raw.readinto(buf)
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _wrap(exc) from exc
        if not n and len(buf) and raw.length:  # http.client reports a short body as a plain end
            self._drop()
            raise ProtocolError(f"the connection closed {raw.length} bytes before the end of the body")
        return n

    def read(self, limit: int | None = None) -> bytes:
        """The body, or its first `limit` bytes (then the rest is dropped with the connection). What
        `read()` returned once, it returns again: error bodies are read by whoever reports them."""
        if self._content is not None:
            return self._content if limit is None else self._content[:limit]
        out = bytearray()
        buf = bytearray(64 * 1024)
        while limit is None or len(out) < limit:
            view = memoryview(buf)[: len(buf) if limit is None else min(len(buf), limit - len(out))]
            n = self.readinto(view) if self._conn is not None else 0
            if not n:
                break
            out += view[:n]
        self._content = bytes(out)
        return self._content

    def json(self) -> object:
        return json.loads(self.read(MAX_SMALL_BODY))

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        raw = self._raw
        if not raw.isclosed() and not raw.chunked and raw.length is not None and raw.length <= DRAIN_LIMIT:
            try:
                raw.read()  # an empty or small unread body: read it and keep the connection
            except (OSError, http.client.HTTPException):
                conn.close()
                return
        if raw.isclosed() and not raw.will_close:
            self._pool._release(self._origin, conn)
        else:
            raw.close()
            conn.close()

    def _drop(self) -> None:
        if self._conn is not None:
            self._raw.close()
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Pooled HTTP/1.1 connections to any origin; `send()` is the only way out."""

    def __init__(self, *, tls_context: Callable[[], "ssl.SSLContext"], headers: Mapping[str, str],
                 timeout: float = 60.0, connect_timeout: float = 15.0) -> None:
        self._tls_context = tls_context  # called once, at the first https connection
        self._context: ssl.SSLContext | None = None
        self._headers = dict(headers)
        self._timeout, self._connect_timeout = timeout, connect_timeout
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _release(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            conns = self._idle.setdefault(origin, [])
            if len(conns) < MAX_IDLE:
                conns.append(conn)
                return
        conn.close()

    def _checkout(self, origin: Origin) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection that the server has not closed, else a new (unconnected) one."""
        while True:
            with self._lock:
                conns = self._idle.get(origin)
                conn = conns.pop() if conns else None
            if conn is None:
                break
            if _idle_and_open(conn):
                return conn, True
            conn.close()
        scheme, host, port = origin
        if scheme == "https":
            if self._context is None:
                self._context = self._tls_context()
            new: http.client.HTTPConnection = _TlsConn(host, port, timeout=self._connect_timeout,
                                                       context=self._context)
        else:
            new = _Conn(host, port, timeout=self._connect_timeout)
        new.io_timeout = self._timeout  # type: ignore[attr-defined]
        return new, False

    def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: Body = None,
             follow_redirects: bool = False) -> Response:
        """One request; redirects are followed for GET/HEAD when asked. Raises TransportError."""
        hdrs = {**self._headers, **(headers or {})}
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._send_once(method, url, hdrs, body)
            location = resp.headers.get("Location")
            if not (follow_redirects and resp.status_code in REDIRECTS and location and method in ("GET", "HEAD")):
                return resp
            resp.close()
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
            url = target
        raise ProtocolError(f"more than {MAX_REDIRECTS} redirects from {url}")

    def _send_once(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        origin = _origin(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            conn, reused = self._checkout(origin)
            if conn.sock is None:
                try:
                    conn.connect()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    raise _wrap(exc, connecting=origin[1]) from exc
            sent = [0]
            try:
                _write_request(conn, method, target, headers, body, sent)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0 and not sent[0]:
                    continue  # the server had closed the kept-alive connection: nothing was processed, once more
                raise _wrap(exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _wrap(exc) from exc
            except BaseException:  # Cancelled, KeyboardInterrupt: the request is half-sent
                conn.close()
                raise
            return Response(self, origin, conn, raw, url)
        raise AssertionError("unreachable")


def _idle_and_open(conn: http.client.HTTPConnection) -> bool:
    """A kept-alive socket that is readable while no request is out was closed by the server (or holds
    junk): not reusable."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError(f"unsupported URL {url!r}")
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


def _write_request(conn: http.client.HTTPConnection, method: str, target: str, headers: Mapping[str, str],
                   body: Body, sent: list[int]) -> None:
    names = {k.lower() for k in headers}
    conn.putrequest(method, target, skip_host="host" in names, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    size = body.length if isinstance(body, FileBody) else len(body) if body is not None else 0
    if "content-length" not in names and (body is not None or method in ("POST", "PUT", "PATCH")):
        conn.putheader("Content-Length", str(size))
    if not isinstance(body, FileBody):
        conn.endheaders(body or None)
        return
    conn.endheaders()
    sock = conn.sock
    plain = type(sock) is socket.socket  # TLS sockets cannot sendfile: copy through one buffer instead
    buf = None if plain else bytearray(1024 * 1024)
    with open(body.path, "rb", buffering=0) as f:
        offset, end = body.offset, body.offset + body.length
        f.seek(offset)
        while offset < end:
            if body.check is not None:
                body.check()
            want = min(SENDFILE_SLICE, end - offset)
            if buf is None:
                n = sock.sendfile(f, offset, want)
            else:
                view = memoryview(buf)[: min(len(buf), want)]
                n = f.readinto(view)
                sock.sendall(view[:n])
            if not n:
                raise ProtocolError(f"{body.path} ended {end - offset} bytes early")
            offset += n
            sent[0] += n
            if body.on_bytes:
                body.on_bytes(n)


__all__ = ["Body", "ConnectError", "FileBody", "ProtocolError", "Response", "Timeout", "Transport", "TransportError",
           "UnknownHost", "connect_error"]
