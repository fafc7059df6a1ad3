"""The gateway's front gate against a real `llmctl serve` (issue #11, parts 2-4): what a web page, a rebinding
DNS name, an oversized or stalled request, or a LAN client can and cannot do, with real HTTP requests.

Every refusal is checked to change nothing: the store's index and blobs are compared before and after. The
gateway here has its own store (gemma3:270m hard-linked, tiny:v1) and small limits set through the same
environment variables an operator uses. Inference-bound limits (templates, queues, keep_alive) are in
test_gateway_limits.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from fixtures_gateway import RunningGateway, gateway_env, metric_value, private_home, start_gateway

ORIGINS = "https://app.example,https://*.example.org"
LIMITS = {"LLMCTL_MAX_BODY": "64k", "LLMCTL_MAX_BLOB_SIZE": "1M", "LLMCTL_HEADER_TIMEOUT": "2",
          "LLMCTL_BODY_TIMEOUT": "2", "LLMCTL_ORIGINS": ORIGINS, "LLMCTL_ALLOWED_HOSTS": "my.box.lan",
          "LLMCTL_MAX_HEADER_SIZE": "16k"}
EVIL = "https://evil.example"
# what a page's plain fetch()/form sends cross-origin without a preflight
SIMPLE = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Site": "cross-site",
          "Sec-Fetch-Mode": "no-cors"}


@pytest.fixture(scope="module")
def sec_home(tmp_path_factory: pytest.TempPathFactory, gateway_store: Path) -> Path:
    return private_home(tmp_path_factory.mktemp("security"), gateway_store)


@pytest.fixture(scope="module")
def sec_gw(sec_home: Path) -> Iterator[RunningGateway]:
    (sec_home.parent / "docker-config").mkdir(exist_ok=True)
    gw = start_gateway(sec_home, env={"LLMCTL_OFFLINE": "1", "DOCKER_CONFIG": str(sec_home.parent / "docker-config"),
                                      **LIMITS})
    try:
        yield gw
    finally:
        assert gw.stop() == 0, gw.stderr()[-2000:]


def _state(home: Path) -> tuple[bytes, tuple[str, ...]]:
    """The store as files: index.json's bytes and the blob names. A refused request must leave both."""
    store = home / "store"
    return (store / "index.json").read_bytes(), tuple(sorted(p.name for p in (store / "blobs" / "sha256").iterdir()))


def _names(gw: RunningGateway) -> set[str]:
    return {m["name"] for m in gw.http.get("/api/tags").json()["models"]}


WRITES = [
    ("POST", "/api/copy", {"source": "tiny:v1", "destination": "attacker.example/x:stolen"}),
    ("DELETE", "/api/delete", {"model": "tiny:v1"}),
    ("POST", "/api/create", {"model": "evil", "from": "tiny:v1", "system": "pwned"}),
    ("POST", "/api/pull", {"model": "127.0.0.1:9/evil/x"}),
    ("POST", "/api/push", {"model": "tiny:v1"}),
    ("POST", "/api/blobs/sha256:" + hashlib.sha256(b"evil").hexdigest(), None),
]


def test_browser_simple_requests_from_other_origins_change_nothing(sec_gw: RunningGateway, sec_home: Path) -> None:
    """A page's `fetch(url, {method: "POST", body: JSON.stringify(...)})` sends text/plain with its Origin:
    refused (403) before any route runs, for every management endpoint; so is a form post from a page
    whose origin is allowed (415: only JSON is a write) and one from a browser that sent no Origin."""
    before = _state(sec_home)
    refused = metric_value(sec_gw.metrics(), "llmctl_requests_refused_total")
    for method, path, body in WRITES:
        content = b"evil" if body is None else json.dumps(body).encode()
        r = sec_gw.http.request(method, path, content=content, headers=SIMPLE)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "origin 'https://evil.example' is not allowed" in r.json()["error"]
        assert "access-control-allow-origin" not in r.headers
        allowed = {**SIMPLE, "Origin": "https://app.example", "Content-Type": "application/x-www-form-urlencoded"}
        r = sec_gw.http.request(method, path, content=content, headers=allowed)
        assert r.status_code == 415, (path, r.status_code, r.text)
        assert r.headers["access-control-allow-origin"] == "https://app.example"  # the page may read why
        no_origin = {"Content-Type": "text/plain", "Sec-Fetch-Site": "same-site"}
        assert sec_gw.http.request(method, path, content=content, headers=no_origin).status_code == 415
    assert _state(sec_home) == before
    text = sec_gw.metrics()
    assert metric_value(text, "llmctl_requests_refused_total") - refused == 3 * len(WRITES)
    assert metric_value(text, "llmctl_requests_refused_total", reason="origin") >= len(WRITES)


def test_curl_d_and_json_clients_work_unchanged(sec_gw: RunningGateway) -> None:
    """`curl -d '{...}'` (form-urlencoded, no Origin) as README and Ollama's docs show it, and JSON clients."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: run scripts/install-system-deps.sh")
    out = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d",
                          '{"source": "tiny:v1", "destination": "tiny-curl"}', sec_gw.url + "/api/copy"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "200", out
    assert "tiny-curl:latest" in _names(sec_gw)
    r = sec_gw.http.request("DELETE", "/api/delete", json={"model": "tiny-curl"})
    assert r.status_code == 200 and "tiny-curl:latest" not in _names(sec_gw)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}",
                                  "localhost.evil.example:{port}"])
def test_a_rebinding_host_is_refused(sec_gw: RunningGateway, host: str) -> None:
    """DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1 reaches the gateway with
    `Host: evil.example`. It can neither read (GET) nor write (a JSON POST, which same-origin needs no CORS)."""
    h = {"Host": host.format(port=sec_gw.port)}
    assert sec_gw.http.get("/api/tags", headers=h).status_code == 403
    same_origin = {**h, "Origin": "http://" + h["Host"], "Content-Type": "application/json"}
    r = sec_gw.http.post("/api/copy", json={"source": "tiny:v1", "destination": "x"}, headers=same_origin)
    assert r.status_code == 403 and "LLMCTL_ALLOWED_HOSTS" in r.json()["error"]
    assert "x:latest" not in _names(sec_gw)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}",
                                  "10.1.2.3:{port}", "app.localhost:{port}", "my.box.lan:{port}", "{hostname}"])
def test_loopback_names_ip_literals_and_listed_hosts_pass(sec_gw: RunningGateway, host: str) -> None:
    h = {"Host": host.format(port=sec_gw.port, hostname=socket.gethostname())}
    assert sec_gw.http.get("/api/version", headers=h).status_code == 200


def test_preflight_and_cors_only_for_allowed_origins(sec_gw: RunningGateway) -> None:
    def preflight(origin: str) -> httpx.Response:
        return sec_gw.http.options("/api/chat", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization"})

    for origin in ("http://localhost:5173", "http://127.0.0.1:8080", "https://localhost", "app://obsidian.md",
                   "vscode-webview://abc", "https://app.example", "https://chat.example.org"):
        r = preflight(origin)
        assert r.status_code == 204, (origin, r.text)
        assert r.headers["access-control-allow-origin"] == origin
        assert "POST" in r.headers["access-control-allow-methods"]
        assert {"content-type", "authorization"} <= {h.strip().lower() for h in
                                                     r.headers["access-control-allow-headers"].split(",")}
    for origin in (EVIL, "null", "https://example.org.evil.example", "http://localhost.evil.example",
                   "chrome-extension://abcdef"):
        r = preflight(origin)
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers, origin
    ok = sec_gw.http.get("/api/version", headers={"Origin": "https://chat.example.org"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://chat.example.org"
    assert ok.headers["vary"] == "Origin"
    missing = sec_gw.http.post("/api/show", json={"model": "nope"}, headers={"Origin": "http://localhost:3000"})
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "http://localhost:3000"
    plain = sec_gw.http.get("/api/version")
    assert "access-control-allow-origin" not in plain.headers  # no Origin, no CORS


def test_a_same_origin_page_is_allowed(sec_gw: RunningGateway) -> None:
    """A console served by the gateway itself (`/ui`) fetches JSON from its own origin, whatever LLMCTL_ORIGINS
    says: Origin equal to the gateway's own scheme://Host is not cross-origin."""
    own = {"Host": f"my.box.lan:{sec_gw.port}", "Origin": f"http://my.box.lan:{sec_gw.port}"}
    r = sec_gw.http.post("/api/show", json={"model": "tiny:v1"}, headers=own)
    assert r.status_code == 200 and r.json()["details"]["format"] == "gguf"


def test_oversized_bodies_are_413_and_change_nothing(sec_gw: RunningGateway, sec_home: Path) -> None:
    before = _state(sec_home)
    pad = "x" * (70 * 1024)  # LLMCTL_MAX_BODY is 64k here
    r = sec_gw.http.post("/api/copy", json={"source": "tiny:v1", "destination": "big", "pad": pad})
    assert r.status_code == 413 and "LLMCTL_MAX_BODY" in r.json()["error"]
    r = sec_gw.http.post("/v1/chat/completions", json={"model": "tiny:v1", "messages": [{"role": "user", "content": pad}]})
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"source": "tiny:v1", "destination": "big", "pad": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    r = sec_gw.http.post("/api/copy", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    blob = os.urandom(1100 * 1024)  # LLMCTL_MAX_BLOB_SIZE is 1M here
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    r = sec_gw.http.post(f"/api/blobs/{digest}", content=blob)
    assert r.status_code == 413 and "LLMCTL_MAX_BLOB_SIZE" in r.json()["error"]
    r = sec_gw.http.post(f"/api/blobs/{digest}", content=iter([blob[:600_000], blob[600_000:]]))
    assert r.status_code == 413
    assert sec_gw.http.head(f"/api/blobs/{digest}").status_code == 404
    assert _state(sec_home) == before
    small = os.urandom(1000)  # under the caps, octet-stream: stored
    r = sec_gw.http.post(f"/api/blobs/sha256:{hashlib.sha256(small).hexdigest()}", content=small,
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201


NON_FINITE = [  # Python's json takes these; JavaScript's JSON.stringify, Go and llama-server's parser do not
    ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "top_p": NaN}',
     "top_p"),
    ("/v1/completions", '{"model": "%s", "prompt": "hi", "max_tokens": 1, "ignore_eos": NaN}', "ignore_eos"),
    ("/api/generate", '{"model": "%s", "prompt": "hi", "options": {"top_p": -Infinity}}', "options.top_p"),
    ("/api/chat", '{"model": "%s", "messages": [{"role": "user", "content": "hi", "x": [1, 1e999]}]}',
     "messages[0].x[1]"),
    ("/v1/responses", '{"model": "%s", "input": "hi", "temperature": Infinity}', "temperature"),
    ("/v1/messages", '{"model": "%s", "max_tokens": 1, "top_p": NaN, "messages": [{"role": "user", "content": "hi"}]}',
     "top_p"),
    ("/api/create", '{"model": "nan", "from": "%s", "parameters": {"temperature": NaN}}', "parameters.temperature"),
]


@pytest.mark.parametrize(("path", "body", "where"), NON_FINITE)
def test_nan_and_infinite_numbers_are_400_before_any_engine(sec_gw: RunningGateway, sec_home: Path, path: str,
                                                           body: str, where: str) -> None:
    """NaN compares false with every bound, so it slipped past the range checks and broke llama-server's JSON
    parser: a 500 `engine error`. Now it is a 400 naming the field, before a model loads or anything is written."""
    before, loaded = _state(sec_home), sec_gw.ps()
    r = sec_gw.http.post(path, content=body % "gemma3:270m", headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert f"{where} must be a finite number" in r.text
    assert sec_gw.ps() == loaded and _state(sec_home) == before


def _recv_all(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except socket.timeout:
            continue
        if not piece:
            return data
        data += piece
    raise AssertionError(f"the gateway kept the connection open; got {data[:200]!r}")


def test_slowloris_and_stalled_bodies_are_cut_off(sec_gw: RunningGateway) -> None:
    """Half a header, then silence: 408 and closed after LLMCTL_HEADER_TIMEOUT (2 s here), while other clients
    are served; a body that stops mid-way is closed after LLMCTL_BODY_TIMEOUT; a huge head is a 431."""
    stalled = socket.create_connection(("127.0.0.1", sec_gw.port), timeout=1)
    stalled.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    body_stall = socket.create_connection(("127.0.0.1", sec_gw.port), timeout=1)
    body_stall.sendall(b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 100\r\n\r\n{\"model\": ")
    idle = socket.create_connection(("127.0.0.1", sec_gw.port), timeout=1)  # connects, never speaks
    assert sec_gw.http.get("/api/version").status_code == 200
    deadline = time.monotonic() + 120
    assert _recv_all(stalled, deadline).startswith(b"HTTP/1.1 408")
    assert _recv_all(body_stall, deadline) == b""  # the route saw a disconnect; nothing to answer
    assert _recv_all(idle, deadline) == b""
    big = socket.create_connection(("127.0.0.1", sec_gw.port), timeout=1)
    big.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    assert _recv_all(big, deadline).startswith(b"HTTP/1.1 431")
    for s in (stalled, body_stall, idle, big):
        s.close()
    assert sec_gw.http.get("/api/version").status_code == 200
    assert "Traceback" not in sec_gw.stderr()


def test_metrics_labels_only_for_real_models_and_routes(sec_gw: RunningGateway) -> None:
    """Names and paths a client makes up never become label values (an unbounded series count)."""
    for i in range(5):
        sec_gw.http.post("/api/show", json={"model": f"made-up-{i}"})
        sec_gw.http.post("/api/generate", json={"model": f"made-up-gen-{i}", "prompt": 5})
        sec_gw.http.get(f"/no/such/path/{i}")
        sec_gw.http.get(f"/v1/models/made-up-v1-{i}")
    text = sec_gw.metrics()
    assert "made-up" not in text and "/no/such" not in text
    assert metric_value(text, "llmctl_requests_total", route="/v1/models/{name:path}", code="404") >= 5
    assert metric_value(text, "llmctl_requests_total", route="/api/generate", model="", code="400") >= 5


def test_insecure_only_for_registries_the_operator_allowed(sec_gw: RunningGateway, sec_home: Path) -> None:
    before = _state(sec_home)
    r = sec_gw.http.post("/api/pull", json={"model": "registry.example.com/team/x", "insecure": True})
    assert r.status_code == 403 and "LLMCTL_INSECURE_REGISTRIES" in r.json()["error"]
    r = sec_gw.http.post("/api/push", json={"model": "tiny:v1", "insecure": True})  # docker.io
    assert r.status_code == 403
    # a loopback registry may be plain HTTP anyway: insecure is honoured (nothing listens on port 9)
    r = sec_gw.http.post("/api/pull", json={"model": "127.0.0.1:9/team/x", "insecure": True, "stream": False})
    assert r.status_code == 502 and "unreachable" in r.json()["error"]
    assert _state(sec_home) == before


def test_the_api_key_covers_every_route_but_health(gateway_store: Path, tmp_path: Path) -> None:
    home = private_home(tmp_path, gateway_store)
    gw = start_gateway(home, api_key="s3cret", env={"LLMCTL_OFFLINE": "1"})
    try:
        digest = "sha256:" + "0" * 64
        for method, path in (("HEAD", "/"), ("GET", "/"), ("GET", "/api/version"), ("HEAD", f"/api/blobs/{digest}"),
                             ("GET", "/metrics"), ("OPTIONS", "/api/tags"), ("GET", "/v1/models")):
            r = httpx.request(method, gw.url + path, trust_env=False)
            assert r.status_code == 401, (method, path, r.status_code)
        assert httpx.get(gw.url + "/health", trust_env=False).status_code == 200
        key = {"Authorization": "Bearer s3cret"}
        assert httpx.head(gw.url + "/", headers=key, trust_env=False).status_code == 200
        assert httpx.head(gw.url + f"/api/blobs/{digest}", headers=key, trust_env=False).status_code == 404
        assert httpx.get(gw.url + "/api/version", headers={"x-api-key": "s3cret"}, trust_env=False).status_code == 200
        assert httpx.get(gw.url + "/api/version", headers={"Authorization": "Bearer s3cre"},
                         trust_env=False).status_code == 401
        # a browser's preflight carries no credentials: it is answered for an allowed origin, refused for others
        pf = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
        assert httpx.options(gw.url + "/api/chat", headers=pf, trust_env=False).status_code == 204
        assert httpx.options(gw.url + "/api/chat", headers={**pf, "Origin": EVIL}, trust_env=False).status_code == 403
        assert httpx.get(gw.url + "/api/version", headers={**key, "Origin": EVIL}, trust_env=False).status_code == 403
    finally:
        assert gw.stop() == 0


def test_disk_space_is_checked_before_writing(gateway_store: Path, tmp_path: Path, registry, cli) -> None:
    """With less free disk than LLMCTL_DISK_RESERVE leaves, an upload and a pull are refused before the first
    byte: 507 over HTTP, exit 12 and one line for `llmctl pull`; nothing is written."""
    from fixtures_registry import make_gguf

    name = f"{registry.host}/team/space:v1"
    assert cli("package", "--gguf", str(make_gguf(tmp_path / "space.gguf", seed=3)), "--push", name).code == 0
    home = private_home(tmp_path / "gw", gateway_store)
    full = {"LLMCTL_DISK_RESERVE": "1000000T"}  # more than any disk: as if it were full
    gw = start_gateway(home, env={"LLMCTL_OFFLINE": "1", **full})
    try:
        before = _state(home)
        blob = os.urandom(4096)
        r = gw.http.post(f"/api/blobs/sha256:{hashlib.sha256(blob).hexdigest()}", content=blob)
        assert r.status_code == 507 and "LLMCTL_DISK_RESERVE" in r.json()["error"]
        r = gw.http.post("/api/pull", json={"model": name})
        assert r.status_code == 507 and "not enough disk space" in r.json()["error"]
        assert _state(home) == before and not any((home / "store" / "ingest").glob("*.partial"))
    finally:
        assert gw.stop() == 0
    r = cli("pull", name, env={"LLMCTL_HOME": str(tmp_path / "cli-home"), **full})
    assert r.code == 12 and r.stderr.startswith("llmctl: error: not enough disk space")
    assert "Traceback" not in r.stderr and len([x for x in r.stderr.splitlines() if "error" in x]) == 1


def test_listening_beyond_loopback_without_a_key_warns(gateway_store: Path, tmp_path: Path) -> None:
    home = private_home(tmp_path, gateway_store)
    for extra, warned in (([], True), (["--api-key", "k"], False)):
        proc = subprocess.Popen([sys.executable, "-m", "llmctl", "serve", "--host", "0.0.0.0", "--port", "0", *extra],
                                env=gateway_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "gateway listening on" in line:  # ready: the warning comes before
                    break
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        text = "".join(lines)
        assert ("without an API key" in text) is warned, text
        assert proc.returncode == 0
