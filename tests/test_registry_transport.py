"""The registry client's HTTP/1.1 layer (`oci/registry/http11.py`) and the blob writer's background flush,
against small local servers that misbehave on purpose: redirects to another origin, bodies cut short,
kept-alive connections the server closes, byte ranges sent with sendfile."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from llmctl.errors import IntegrityError
from llmctl.oci import blobs
from llmctl.oci.layout import Store
from llmctl.oci.registry.http11 import ConnectError, FileBody, ProtocolError, Transport


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose handler is `handle(request)`; counts connections."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        owner = self
        self.connections = 0
        self.seen: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                owner.connections += 1

            def _any(self) -> None:
                owner.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def serve() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], Server]]:
    made: list[Server] = []

    def make(handle: Callable[[BaseHTTPRequestHandler], None]) -> Server:
        made.append(Server(handle))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def _transport() -> Transport:
    def no_tls():  # type: ignore[no-untyped-def]
        raise AssertionError("no https here")

    return Transport(tls_context=no_tls, headers={"User-Agent": "test"}, timeout=10, connect_timeout=5)


def test_keep_alive_reuses_one_connection_and_small_unread_bodies_do_not_break_it(serve) -> None:
    server = serve(lambda h: _reply(h, 200, b"x" * 1000))
    t = _transport()
    for _ in range(5):
        resp = t.send("GET", f"{server.url}/v2/")
        assert resp.status_code == 200
        resp.close()  # body unread: drained, connection kept
    assert t.send("GET", f"{server.url}/v2/").read() == b"x" * 1000
    assert server.connections == 1
    t.close()


def test_redirect_to_another_origin_drops_authorization(serve) -> None:
    cdn = serve(lambda h: _reply(h, 200, b"blob bytes"))
    registry = serve(lambda h: _reply(h, 307, headers={"Location": f"{cdn.url}/signed?x=1"}))
    t = _transport()
    resp = t.send("GET", f"{registry.url}/v2/r/blobs/sha256:00", headers={"Authorization": "Bearer secret"},
                  follow_redirects=True)
    assert resp.status_code == 200 and resp.read() == b"blob bytes"
    assert registry.seen[0][2]["authorization"] == "Bearer secret"
    assert cdn.seen[0][1] == "/signed?x=1" and "authorization" not in cdn.seen[0][2]
    resp.close()
    not_followed = t.send("GET", f"{registry.url}/v2/r/blobs/sha256:00")
    assert not_followed.status_code == 307
    not_followed.close()
    t.close()


def test_a_body_cut_short_is_a_protocol_error_not_an_end(serve) -> None:
    def cut(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"y" * 400)
        h.wfile.flush()
        h.close_connection = True

    server = serve(cut)
    t = _transport()
    resp = t.send("GET", f"{server.url}/blob")
    buf = bytearray(4096)
    got = 0
    with pytest.raises(ProtocolError, match="600 bytes before the end"):
        while n := resp.readinto(buf):
            got += n
    assert got == 400
    resp.close()
    t.close()


def test_a_kept_alive_connection_the_server_closed_is_not_reused(serve) -> None:
    def once_then_close(h: BaseHTTPRequestHandler) -> None:
        _reply(h, 200, b"ok")
        h.wfile.flush()
        h.close_connection = True  # closes without saying `Connection: close`: the client finds out later

    server = serve(once_then_close)
    t = _transport()
    for _ in range(3):
        resp = t.send("POST", f"{server.url}/v2/r/blobs/uploads/")
        assert resp.read() == b"ok"
        resp.close()
    assert server.connections == 3
    t.close()


def test_file_body_sends_exactly_its_range(serve, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    received: list[str] = []

    def digest_of_body(h: BaseHTTPRequestHandler) -> None:
        received.append(hashlib.sha256(h.rfile.read(int(h.headers["Content-Length"]))).hexdigest())
        _reply(h, 201)

    server = serve(digest_of_body)
    t = _transport()
    progress: list[int] = []
    for offset, length in ((0, len(data)), (1_000_001, 2_000_000), (len(data) - 5, 5)):
        resp = t.send("PUT", f"{server.url}/up", body=FileBody(path, offset, length, on_bytes=progress.append))
        assert resp.status_code == 201
        resp.close()
        assert received[-1] == hashlib.sha256(data[offset:offset + length]).hexdigest()
    assert sum(progress) == len(data) + 2_000_000 + 5
    t.close()


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError):
        _transport().send("GET", f"http://127.0.0.1:{port}/v2/")


def test_large_blob_is_flushed_in_the_background_and_committed_verified(tmp_path: Path, monkeypatch) -> None:
    synced = threading.Event()
    real = os.fdatasync
    monkeypatch.setattr(blobs.os, "fdatasync", lambda fd: (real(fd), synced.set()))
    monkeypatch.setattr(blobs, "FLUSH_EVERY", 1024 * 1024)
    store = Store(tmp_path / "store").init()
    data = os.urandom(5 * 1024 * 1024 + 3)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with store.writer() as w:
        for i in range(0, len(data), 256 * 1024):
            w.write(data[i:i + 256 * 1024])
        assert synced.wait(10)  # the flusher ran, in the background, before the commit's own fsync
        written = w.commit(digest, len(data))
    assert written.digest == digest and store.blob_path(digest).read_bytes() == data
    assert not any(t.name == "llmctl-flush" for t in threading.enumerate())


def test_a_background_flush_error_fails_the_commit_and_publishes_nothing(tmp_path: Path, monkeypatch) -> None:
    failed = threading.Event()

    def broken(fd: int) -> None:
        failed.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(blobs.os, "fdatasync", broken)
    monkeypatch.setattr(blobs, "FLUSH_EVERY", 1024 * 1024)
    store = Store(tmp_path / "store").init()
    data = os.urandom(3 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(OSError, match="Input/output"):
        with store.writer() as w:
            w.write(data)
            assert failed.wait(10)  # the error happened in the background, before the commit
            w.commit(digest, len(data))
    assert not store.has_blob(digest) and list(store.ingest_dir.glob("tmp-*")) == []


def test_a_wrong_digest_still_publishes_nothing_with_the_flusher_running(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(blobs, "FLUSH_EVERY", 1024 * 1024)
    store = Store(tmp_path / "store").init()
    data = os.urandom(3 * 1024 * 1024)
    with pytest.raises(IntegrityError):
        with store.writer() as w:
            w.write(data)
            w.commit("sha256:" + "0" * 64, len(data))
    assert list(store.blobs_dir.iterdir()) == [] and list(store.ingest_dir.glob("tmp-*")) == []
