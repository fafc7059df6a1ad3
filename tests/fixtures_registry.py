"""Registry fixtures: Debian's real `docker-registry` (distribution 2.8) on a free 127.0.0.1 port.

Four flavours, each started with `docker-registry serve CONFIG` and waited on until `/v2/` answers:
- `registry`: plain HTTP, no auth;
- `registry_basic`: htpasswd (bcrypt) basic auth;
- `registry_tls`: HTTPS with a certificate from a throw-away CA made with openssl (`.ca_cert`);
- `registry_token`: the bearer-token flow (`auth: token:`), with a small token server written here that
  signs RS256 JWTs with openssl and puts its certificate in the `x5c` header, as distribution expects.

Every registry keeps its storage in the test's tmp dir, has a fixed `http.secret` (so upload sessions survive
a restart, as in a real deployment) and can be `kill()`ed and `start()`ed again on the same port: the fault
tests use that. Any test that uses a registry also gets its own `DOCKER_CONFIG`, so a login never touches the
user's `~/.docker`.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlparse

import pytest

USER, PASSWORD = "alice", "wonderland-s3cret"
SERVICE, ISSUER = "llmctl-test-registry", "llmctl-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """An HTTP stand-in on 127.0.0.1 answering with a handler class in daemon threads until `stop()`; the test
    proxies and pages subclass it and call `serve` once their handler is built (port 0: any free one)."""

    port: int
    _server: ThreadingHTTPServer

    def serve(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is not installed: run scripts/install-system-deps.sh")
    return path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([_need("openssl"), *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Certs:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token_cert: Path
    token_key: Path


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and a token-signing key pair."""
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
             "-subj", "/CN=llmctl test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "3", "-extfile", "ext.cnf", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.pem",
             "-days", "3", "-subj", "/CN=llmctl test token issuer", cwd=d)
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "token.pem", d / "token.key")


# -- the token server ---------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Docker's token flow: `GET /token?service=&scope=...` with optional basic credentials -> a signed JWT.

    Users in `users` get every action they ask for; anonymous callers get `pull` on repositories under
    `public/` only. `requests` records (account, scopes) per call; `invalid_first` makes the first N tokens
    already expired (past distribution's 60 s leeway) while claiming `expires_in: 300`, to test renewal on 401.
    """

    certs: Certs
    users: dict[str, str] = field(default_factory=lambda: {USER: PASSWORD})
    port: int = field(default_factory=free_port)
    requests: list[tuple[str | None, tuple[str, ...]]] = field(default_factory=list)
    invalid_first: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _x5c(self) -> str:
        pem = self.certs.token_cert.read_text()
        return "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c()]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(
            [_need("openssl"), "dgst", "-sha256", "-sign", str(self.certs.token_key)],
            input=signing_input.encode(), capture_output=True, check=True,
        ).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def grant(self, account: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            allowed = wanted if account else [a for a in wanted if a == "pull" and name.startswith("public/")]
            if kind == "repository" and allowed:
                access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != "/token":
                    self.send_error(404)
                    return
                query = parse_qs(url.query)
                account = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if owner.users.get(user) != password:
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        body = b'{"details":"incorrect username or password"}'
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    account = user
                scopes = query.get("scope", [])
                owner.requests.append((account, tuple(scopes)))
                now = int(time.time())
                expired = len(owner.requests) <= owner.invalid_first
                claims = {
                    "iss": ISSUER, "sub": account or "", "aud": query.get("service", [""])[0],
                    "exp": now - 600 if expired else now + 300, "nbf": now - 700 if expired else now - 5,
                    "iat": now, "jti": uuid.uuid4().hex, "access": owner.grant(account, scopes),
                }
                token = owner.sign(claims)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# -- the registry -------------------------------------------------------------------------------------
@dataclass
class RegistryServer:
    """One `docker-registry serve` process. `host` is what goes in a reference: `127.0.0.1:PORT`."""

    workdir: Path
    auth: str | None = None  # None | "basic" | "token"
    tls: Certs | None = None
    token_server: TokenServer | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    username: str = USER
    password: str = PASSWORD

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_cert(self) -> Path | None:
        return self.tls.ca_cert if self.tls else None

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    @property
    def log(self) -> Path:
        return self.workdir / "registry.log"

    def config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: llmctl-test-fixed-secret",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls.server_cert}", f"    key: {self.tls.server_key}"]
        if self.auth == "basic":
            htpasswd = self.workdir / "htpasswd"
            out = subprocess.run([_need("htpasswd"), "-Bbn", self.username, self.password],
                                 capture_output=True, text=True, check=True).stdout
            htpasswd.write_text(out.strip() + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: llmctl-test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            assert self.token_server is not None
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.token_server.certs.token_cert}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> "RegistryServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "config.yml"
        cfg.write_text(self.config())
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([_need("docker-registry"), "serve", str(cfg)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        ctx = ssl.create_default_context(cafile=str(self.tls.ca_cert)) if self.tls else None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=ctx)
                return self
            except urllib.error.HTTPError:
                return self  # 401: it answers, and asks for credentials
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"docker-registry did not answer on {self.url}: {self.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would: no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> "RegistryServer":
        self.kill()
        return self.start()

    def blob_exists(self, digest: str) -> bool:
        hexpart = digest.split(":", 1)[1]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data").exists()


@pytest.fixture()
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG for this test: logins go here, never to the user's ~/.docker."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    for var in ("LLMCTL_CA_CERT", "LLMCTL_INSECURE_REGISTRIES", "LLMCTL_OFFLINE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    return d


def _serve(server: RegistryServer) -> Iterator[RegistryServer]:
    server.start()
    try:
        yield server
    finally:
        server.kill()
        if server.token_server:
            server.token_server.stop()


@pytest.fixture()
def registry(tmp_path: Path, docker_config: Path) -> Iterator[RegistryServer]:
    """Plain HTTP, anonymous."""
    yield from _serve(RegistryServer(tmp_path / "registry"))


@pytest.fixture()
def registry_basic(tmp_path: Path, docker_config: Path) -> Iterator[RegistryServer]:
    """HTTP with htpasswd basic auth (user `alice`)."""
    yield from _serve(RegistryServer(tmp_path / "registry-basic", auth="basic"))


@pytest.fixture()
def registry_tls(tmp_path: Path, docker_config: Path, tls_certs: Certs) -> Iterator[RegistryServer]:
    """HTTPS with a certificate from a test CA (`.ca_cert`), anonymous."""
    yield from _serve(RegistryServer(tmp_path / "registry-tls", tls=tls_certs))


@pytest.fixture()
def registry_token(tmp_path: Path, docker_config: Path, tls_certs: Certs) -> Iterator[RegistryServer]:
    """HTTP with the bearer-token flow; `.token_server` issues the tokens and records the requests."""
    token = TokenServer(tls_certs)
    token.start()
    yield from _serve(RegistryServer(tmp_path / "registry-token", auth="token", token_server=token))


@pytest.fixture()
def small_gguf(tmp_path: Path) -> Path:
    """A real, tiny GGUF (written with the `gguf` package): fast where the test is about the transport."""
    return make_gguf(tmp_path / "tiny-q8_0.gguf")


def make_gguf(path: Path, *, name: str = "tiny", seed: int = 0, tensor_kb: int = 64) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(256)
    writer.add_block_count(1)
    writer.add_embedding_length(16)
    writer.add_head_count(2)
    writer.add_file_type(7)
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.standard_normal((tensor_kb * 256,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path



# -- a fault-injecting proxy ----------------------------------------------------------------------------
class FaultProxy(LocalServer):
    """A small HTTP proxy in front of a registry, for faults a healthy registry never shows.

    It forwards every request (the registry builds its `Location` URLs from our Host header, so uploads come
    back through us too) and can: flip one byte of every blob it serves (`corrupt_blobs`), answer `503` (or
    another status) to the first `fail_first` requests, throttle blob bodies to `rate` bytes/s, and redirect
    blob downloads to another host (`redirect_blobs`), as registries backed by a storage bucket do.
    """

    def __init__(self, upstream: RegistryServer, *, corrupt_blobs: bool = False, fail_first: int = 0,
                 fail_status: int = 503, rate: float | None = None, redirect_blobs: str | None = None) -> None:
        import http.client

        self.upstream = upstream
        self.corrupt_blobs = corrupt_blobs
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.rate = rate
        self.redirect_blobs = redirect_blobs
        self.port = free_port()
        self.requests: list[tuple[str, str, int]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if len(owner.requests) < owner.fail_first:
                    owner.requests.append((self.command, self.path, owner.fail_status))
                    body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected failure"}]}'
                    self.rfile.read(length)
                    self.send_response(owner.fail_status)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if owner.redirect_blobs and self.command == "GET" and "/blobs/sha256:" in self.path:
                    owner.requests.append((self.command, self.path, 307))
                    self.send_response(307)
                    self.send_header("Location", f"http://{owner.redirect_blobs}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", owner.upstream.port, timeout=60)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                        conn.putheader(k, v)
                conn.endheaders()
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    conn.send(chunk)
                    remaining -= len(chunk)
                resp = conn.getresponse()
                owner.requests.append((self.command, self.path, resp.status))
                is_blob = self.command == "GET" and "/blobs/sha256:" in self.path and resp.status in (200, 206)
                size = resp.getheader("Content-Length")
                body = None if size is not None else resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", size if size is not None else str(len(body or b"")))
                self.end_headers()
                if self.command == "HEAD":
                    conn.close()
                    return
                if body is not None:
                    self.wfile.write(body)
                    conn.close()
                    return
                first = True
                started, sent = time.monotonic(), 0
                try:
                    while chunk := resp.read(256 * 1024):
                        if is_blob and owner.corrupt_blobs and first and len(chunk) > 10:
                            chunk = chunk[:10] + bytes([chunk[10] ^ 0xFF]) + chunk[11:]
                        first = False
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if is_blob and owner.rate:
                            ahead = sent / owner.rate - (time.monotonic() - started)
                            if ahead > 0:
                                time.sleep(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.serve(Handler, self.port)


@pytest.fixture()
def fault_proxy(registry: RegistryServer) -> Iterator[Callable[..., FaultProxy]]:
    """`fault_proxy(corrupt_blobs=True)` etc.: proxies in front of the plain `registry`, stopped at teardown."""
    made: list[FaultProxy] = []

    def make(**kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(registry, **kwargs)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()
