"""Registry credentials stay home (issue #11, part 5), against the real docker-registry.

- an upload `Location` on another origin, and a blob redirect to another origin, get no `Authorization`: a
  small forwarding front in front of the real registry points them at a "storage" server that records what
  it receives and, like a presigned bucket, completes the request without the user's credentials;
- a token realm on plain HTTP is refused for a registry reached over HTTPS (nothing is sent to it), and
  allowed once the registry is listed in LLMCTL_INSECURE_REGISTRIES;
- plain-HTTP loopback registries with a loopback realm keep working (test_registry_auth covers the flow).
"""

from __future__ import annotations

import base64
import http.client
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable, Iterator

import pytest

from fixtures_registry import PASSWORD, USER, LocalServer, RegistryServer, TokenServer, free_port
from llmctl.oci.registry import connect
from llmctl.oci.registry.auth import Credentials, DockerConfig
from llmctl.settings import Settings

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Forwarder(LocalServer):
    """An HTTP server that forwards every request to `upstream` (host:port), with hooks to change the answer
    (`on_response(method, path, status, headers) -> (status, headers)`) or the request's headers
    (`add_headers`). `seen` records (method, path, Authorization header or None) of each request."""

    def __init__(self, upstream_port: int, *, on_response: Callable[..., tuple[int, dict[str, str]]] | None = None,
                 add_headers: dict[str, str] | None = None) -> None:
        self.upstream_port = upstream_port
        self.on_response = on_response
        self.add_headers = add_headers or {}
        self.seen: list[tuple[str, str, str | None]] = []
        self.port = free_port()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                owner.seen.append((self.command, self.path, self.headers.get("Authorization")))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                conn = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "host")}
                headers["Host"] = f"127.0.0.1:{owner.port}"  # the registry builds Locations from it
                headers.update(owner.add_headers)
                conn.request(self.command, self.path, body=body if body or self.command in ("POST", "PUT", "PATCH")
                             else None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                out = {k: v for k, v in resp.getheaders()
                       if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")}
                if owner.on_response is not None:
                    status, out = owner.on_response(self.command, self.path, status, out)
                self.send_response(status)
                for k, v in out.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.serve(Handler, self.port)


@pytest.fixture()
def forwarders() -> Iterator[Callable[..., Forwarder]]:
    made: list[Forwarder] = []

    def make(*args: object, **kwargs: object) -> Forwarder:
        f = Forwarder(*args, **kwargs)  # type: ignore[arg-type]
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()


def _login(docker_config: Path, registry: str) -> None:
    DockerConfig(docker_config).store(registry, Credentials(USER, PASSWORD))


def test_an_upload_location_on_another_origin_gets_no_credentials(
        registry_basic: RegistryServer, docker_config: Path, forwarders, cli, small_gguf: Path) -> None:
    """The registry hands out upload URLs on a storage host (`localhost:PORT`, another origin): the push
    completes, and that host never sees the user's Basic credentials; the registry's own origin still does."""
    storage = forwarders(registry_basic.port, add_headers={"Authorization": BASIC})  # a presigned bucket

    def to_storage(method: str, path: str, status: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        if "Location" in headers and "/blobs/uploads/" in headers["Location"]:
            headers["Location"] = re.sub(r"^(https?://[^/]+)?", f"http://localhost:{storage.port}",
                                         headers["Location"])
        return status, headers

    front = forwarders(registry_basic.port, on_response=to_storage)
    _login(docker_config, front.host)
    r = cli("package", "--gguf", str(small_gguf), "--push", f"{front.host}/team/tiny:v1")
    assert r.code == 0, r.stderr
    assert storage.seen and all(auth is None for _, _, auth in storage.seen), storage.seen
    assert any(auth == BASIC for _, path, auth in front.seen if path.startswith("/v2/team/"))


def test_a_blob_redirect_to_another_origin_gets_no_credentials(
        registry_basic: RegistryServer, docker_config: Path, forwarders, cli, small_gguf: Path,
        tmp_path: Path) -> None:
    """A pull whose blobs redirect (307) to a CDN host: the bytes arrive and verify; no Authorization there."""
    _login(docker_config, registry_basic.host)
    name = f"{registry_basic.host}/team/redirected:v1"
    assert cli("package", "--gguf", str(small_gguf), "--push", name).code == 0
    cdn = forwarders(registry_basic.port, add_headers={"Authorization": BASIC})

    def to_cdn(method: str, path: str, status: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        if method == "GET" and "/blobs/sha256:" in path and status == 200:
            return 307, {"Location": f"http://localhost:{cdn.port}{path}"}
        return status, headers

    front = forwarders(registry_basic.port, on_response=to_cdn)
    _login(docker_config, front.host)
    r = cli("pull", f"{front.host}/team/redirected:v1", env={"LLMCTL_HOME": str(tmp_path / "pulled")})
    assert r.code == 0, r.stderr
    assert cdn.seen and all(auth is None for _, _, auth in cdn.seen), cdn.seen
    assert any(auth == BASIC for _, _, auth in front.seen)


def test_authorization_only_to_the_registrys_own_origin(registry_tls: RegistryServer, docker_config: Path) -> None:
    settings = Settings.from_env({"LLMCTL_HOME": str(docker_config.parent / "h"), "DOCKER_CONFIG": str(docker_config),
                                  "LLMCTL_CA_CERT": str(registry_tls.ca_cert)})
    with connect(settings, registry_tls.host) as client:
        assert client.base == f"https://{registry_tls.host}"
        assert client.owns(f"https://{registry_tls.host}/v2/x/blobs/uploads/1")
        assert not client.owns(f"http://{registry_tls.host}/v2/x/blobs/uploads/1")  # a scheme downgrade
        assert not client.owns(f"https://localhost:{registry_tls.port}/v2/")  # another host
        assert not client.owns("https://storage.example/bucket/1")


@pytest.fixture()
def registry_tls_token(tmp_path: Path, docker_config: Path, tls_certs) -> Iterator[RegistryServer]:  # type: ignore[no-untyped-def]
    """HTTPS with the bearer-token flow, whose token server (realm) is plain HTTP."""
    token = TokenServer(tls_certs)
    token.start()
    server = RegistryServer(tmp_path / "registry-tls-token", auth="token", tls=tls_certs, token_server=token).start()
    try:
        yield server
    finally:
        server.kill()
        token.stop()


def test_a_token_realm_on_plain_http_gets_nothing_from_an_https_registry(
        registry_tls_token: RegistryServer, docker_config: Path, cli, small_gguf: Path) -> None:
    tokens = registry_tls_token.token_server
    assert tokens is not None and tokens.realm.startswith("http://")
    _login(docker_config, registry_tls_token.host)
    name = f"{registry_tls_token.host}/team/tiny:v1"
    ca = {"LLMCTL_CA_CERT": str(registry_tls_token.ca_cert)}
    r = cli("package", "--gguf", str(small_gguf), "--push", name, env=ca)
    assert r.code == 7, r.stderr
    assert "https:// token server" in r.stderr and "LLMCTL_INSECURE_REGISTRIES" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("llmctl: error:")]
    assert len(errors) == 1 and "https:// token server" in errors[0] and "Traceback" not in r.stderr
    assert tokens.requests == []  # the credentials never left
    # the operator vouches for this registry: the same realm is used
    r = cli("push", name, env={**ca, "LLMCTL_INSECURE_REGISTRIES": registry_tls_token.host})
    assert r.code == 0, r.stderr
    assert tokens.requests and tokens.requests[0][0] == USER
