"""Ollama's model management API on `llmctl serve` (pull, push, create, copy, delete, blobs, /api/embeddings)
and tool calling on /api/chat.

Pull and push go to the real docker-registry fixture; nothing leaves loopback (the gateways here run with
LLMCTL_OFFLINE=1, so any other registry fails at once). Store operations run against a gateway with its own
store (a tiny real GGUF), so deleting never touches the session's shared store; the tests that need real
inference (an unloaded engine, tools reaching the Gemma chat template, raw embeddings) use the shared
gateway and clean up what they create. Tool-call translation is tested on crafted llama-server events,
then through a real gateway whose engine is a stand-in replaying those events, then on the real model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import time
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from fixtures_gateway import MODEL, RunningGateway, metric_value, settled_metrics, start_gateway
from fixtures_registry import RegistryServer, make_gguf
from llmctl.errors import (
    AuthError, Conflict, EngineError, IntegrityError, InvalidInput, InvalidReference, LlmctlError, NotFound, OfflineError,
    PlanError, RegistryError, UsageError,
)
from llmctl.oci.registry.transfer import TOTAL_KEY, Cancelled
from llmctl.server import errors, jobs, ollama_tools
from llmctl.server.errors import GatewayError

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CALL_EVENTS: list[dict[str, Any]] = [  # llama-server's stream of one tool call, as it sends it
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_7", "type": "function", "function": {
        "name": "get_weather", "arguments": "{\"city\": "}}]}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]},
                  "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
     "timings": {"prompt_n": 12, "prompt_ms": 5.0, "predicted_n": 9, "predicted_ms": 20.0}},
]


def _ndjson(gw: RunningGateway, path: str, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    with gw.http.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            return r.status_code, [json.loads(r.read())]
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return 200, [json.loads(line) for line in r.iter_lines() if line.strip()]


# -- tool calls: the translation itself --------------------------------------------------------------------
def test_tool_call_fragments_become_one_ollama_call() -> None:
    calls = ollama_tools.ToolCalls()
    for event in CALL_EVENTS:
        calls.add(event)
    assert calls.ollama() == [{"id": "call_7", "function": {"index": 0, "name": "get_weather",
                                                            "arguments": {"city": "Paris"}}}]


def test_several_calls_whole_messages_and_cut_off_calls() -> None:
    calls = ollama_tools.ToolCalls()
    calls.add({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": {"y": [2]}}},
        {"id": "c", "type": "function", "function": {"name": "h", "arguments": ""}},
    ]}, "finish_reason": "tool_calls"}]})
    out = calls.ollama()
    assert [c["function"]["name"] for c in out] == ["f", "g", "h"]
    assert [c["function"]["arguments"] for c in out] == [{"x": 1}, {"y": [2]}, {}]
    assert [c["function"]["index"] for c in out] == [0, 1, 2]
    cut = ollama_tools.ToolCalls()  # the answer hit num_predict mid-call: not a call a client could make
    cut.add({"choices": [{"delta": {"tool_calls": [
        {"index": 0, "function": {"name": "f", "arguments": "{\"x\": "}}]}}]})
    assert cut.ollama() == []
    assert ollama_tools.ToolCalls().ollama() == []
    assert ollama_tools.done_reason("tool_calls") == "stop" and ollama_tools.done_reason("length") == "length"


def test_ollama_tool_turns_become_openai_ones() -> None:
    msgs = ollama_tools.engine_messages([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "content": "10:00", "tool_name": "get_time"},
        {"role": "tool", "content": "18 C", "tool_name": "get_weather"},
    ])
    calls = msgs[1]["tool_calls"]
    assert calls[0] == {"id": "call_1_0", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert json.loads(calls[1]["function"]["arguments"]) == {"city": "Rome"}
    # results are matched to their calls by tool name, whatever order they come in
    assert msgs[2] == {"role": "tool", "content": "10:00", "tool_call_id": "call_1_1", "name": "get_time"}
    assert msgs[3] == {"role": "tool", "content": "18 C", "tool_call_id": "call_1_0", "name": "get_weather"}
    assert ollama_tools.has_tool_turns([{"role": "tool", "content": "x"}])
    assert not ollama_tools.has_tool_turns([{"role": "user", "content": "x"}])


@pytest.mark.parametrize("tools", [{"name": "f"}, [{"type": "function"}], [{"type": "web", "function": {"name": "f"}}],
                                   ["get_weather"]])
def test_bad_tools_are_a_400(tools: Any) -> None:
    with pytest.raises(GatewayError) as info:
        ollama_tools.check_tools(tools)
    assert info.value.status == 400
    assert ollama_tools.check_tools([{"function": {"name": "f"}}]) == [{"function": {"name": "f"}, "type": "function"}]
    with pytest.raises(GatewayError, match="arguments must be an object"):
        ollama_tools.engine_messages([{"role": "assistant",
                                       "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}])


# -- progress: what the library reports, as Ollama's status objects ------------------------------------------
def test_progress_reports_read_like_ollama_and_cancel_the_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "REPORT_EVERY", 3600.0)  # a bar reports at its start and end only
    async def scenario() -> list[tuple[str, Any]]:
        p = jobs.QueueProgress(asyncio.get_running_loop(), "pulling", ("verifying sha256 digest", "writing manifest"))
        digest = "sha256:" + "ab" * 32

        def work(progress: jobs.QueueProgress) -> str:
            progress.start(TOTAL_KEY, "pulling 1 blob", 100)
            progress.start(digest, "pulling abab", 100)
            progress.advance(TOTAL_KEY, 40)
            progress.advance(digest, 40)  # within REPORT_EVERY of the start: no line
            progress.finish(digest, "done")
            progress.finish(TOTAL_KEY)
            progress.start("ingest:/x/model.gguf", "copying model.gguf", 7)
            return "result"

        await asyncio.get_running_loop().run_in_executor(None, p.run, work)
        p.cancel()
        with pytest.raises(Cancelled):
            p.advance(digest, 1)  # the transfers' own way to stop: the partial file stays for a resume
        await asyncio.sleep(0)
        return [p.queue.get_nowait() for _ in range(p.queue.qsize())]

    items = asyncio.run(scenario())
    digest = "sha256:" + "ab" * 32
    assert items == [
        ("line", {"status": "pulling abababababab", "digest": digest, "total": 100, "completed": 0}),
        ("line", {"status": "pulling abababababab", "digest": digest, "total": 100, "completed": 100}),
        ("line", {"status": "verifying sha256 digest"}),
        ("line", {"status": "writing manifest"}),
        ("line", {"status": "copying model.gguf", "total": 7, "completed": 0}),
        ("done", "result"),
    ]


@pytest.mark.parametrize(("exc", "status"), [
    (NotFound("model 'x' not found", hint="h"), 404), (InvalidInput("bad"), 400), (AuthError("denied"), 401),
    (OfflineError("offline"), 503), (RegistryError("registry 127.0.0.1:1 is unreachable"), 502),
    (IntegrityError("corrupt"), 502), (Cancelled(), 499), (ValueError("boom"), 500),
    (InvalidReference("invalid model name 'A'"), 400), (UsageError("no"), 400), (Conflict("busy"), 409),
    (EngineError("engine died"), 502), (PlanError("does not fit"), 500),
])
def test_store_errors_map_to_http(exc: Exception, status: int) -> None:
    err = jobs.job_error(exc)
    assert err.status == status
    if isinstance(exc, LlmctlError):  # one table: a model route answers the same error with the same status
        assert errors.from_llmctl(exc).status == status
    if status == 404:
        assert err.message == "model 'x' not found"  # Ollama's wording, no CLI hint
    if isinstance(exc, AuthError):
        assert err.message.startswith("registry: ")  # the registry refused the server, not the client's key


# -- a gateway with a store of its own -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose store (not a link to the shared one) holds `tiny:v1`, a tiny real GGUF."""
    from llmctl.api.package import PackageSpec, package
    from llmctl.settings import Settings

    root = tmp_path_factory.mktemp("manage")
    home = root / "home"
    package(Settings.from_env({"LLMCTL_HOME": str(home)}), "tiny:v1",
            PackageSpec(gguf=make_gguf(root / "tiny.gguf")))
    (root / "docker-config").mkdir()
    return home


@pytest.fixture(scope="module")
def own_gw(own_home: Path) -> Iterator[RunningGateway]:
    gw = start_gateway(own_home, env={"LLMCTL_OFFLINE": "1", "DOCKER_CONFIG": str(own_home.parent / "docker-config")})
    try:
        yield gw
    finally:
        assert gw.stop() == 0, gw.stderr()[-2000:]


def _locked(path: Path) -> bool:
    """Whether a writer still holds this partial blob file (BlobWriter flocks it while it writes)."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _names(gw: RunningGateway) -> set[str]:
    return {m["name"] for m in gw.http.get("/api/tags").json()["models"]}


def _settings(home: Path) -> Any:
    from llmctl.settings import Settings

    return Settings.from_env({"LLMCTL_HOME": str(home)})


@pytest.mark.slow
def test_copy_and_delete(own_gw: RunningGateway) -> None:
    r = own_gw.http.post("/api/copy", json={"source": "tiny:v1", "destination": "tiny-copy"})
    assert r.status_code == 200 and r.content == b""
    assert {"tiny:v1", "tiny-copy:latest"} <= _names(own_gw)
    r = own_gw.http.request("DELETE", "/api/delete", json={"model": "tiny-copy"})
    assert r.status_code == 200 and r.content == b""
    assert "tiny-copy:latest" not in _names(own_gw) and "tiny:v1" in _names(own_gw)
    r = own_gw.http.request("DELETE", "/api/delete", json={"name": "tiny-copy"})  # `name`: older clients
    assert r.status_code == 404 and r.json() == {"error": "model 'tiny-copy:latest' not found"}
    r = own_gw.http.post("/api/copy", json={"source": "ghost", "destination": "ghost2"})
    assert r.status_code == 404 and "ghost" in r.json()["error"]
    r = own_gw.http.post("/api/copy", json={"source": "tiny:v1", "destination": "x@sha256:" + "0" * 64})
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
    r = own_gw.http.post("/api/copy", json={"source": "tiny:v1"})
    assert r.status_code == 400 and r.json()["error"] == "destination is required"
    r = own_gw.http.request("DELETE", "/api/delete", content=b"{nope")
    assert r.status_code == 400 and "JSON" in r.json()["error"]


@pytest.mark.slow
def test_blob_upload_then_create_from_files(own_gw: RunningGateway, tmp_path: Path) -> None:
    data = make_gguf(tmp_path / "other.gguf", name="other", seed=3).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert own_gw.http.head(f"/api/blobs/{digest}").status_code == 404
    r = own_gw.http.post(f"/api/blobs/{digest}", content=data[:-1] + b"!")
    assert r.status_code == 400 and "digest mismatch" in r.json()["error"]
    assert own_gw.http.head(f"/api/blobs/{digest}").status_code == 404  # nothing half-written stays
    assert own_gw.http.post(f"/api/blobs/{digest}", content=data).status_code == 201
    assert own_gw.http.head(f"/api/blobs/{digest}").status_code == 200
    assert own_gw.http.post(f"/api/blobs/{digest}", content=data).status_code == 200  # already there
    assert own_gw.http.head("/api/blobs/sha256:nothex").status_code == 400

    code, lines = _ndjson(own_gw, "/api/create", {
        "model": "imported", "files": {"other.gguf": digest}, "system": "You are terse.",
        "parameters": {"temperature": 0.25, "stop": ["<end>", "User:"]},
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
        "license": "MIT"})
    assert code == 200, lines
    assert lines[0] == {"status": "gathering model components"}
    assert lines[-2:] == [{"status": "writing manifest"}, {"status": "success"}]
    assert any(line.get("digest") == digest for line in lines)
    shown = own_gw.http.post("/api/show", json={"model": "imported"}).json()
    assert shown["system"] == "You are terse." and shown["license"] == "MIT"
    assert "temperature" in shown["parameters"] and '"User:"' in shown["parameters"]

    # `from` a stored model, not streamed: only the last status, as Ollama answers
    r = own_gw.http.post("/api/create", json={"model": "derived", "from": "imported", "system": "Be brief.",
                                              "stream": False})
    assert r.status_code == 200 and r.json() == {"status": "success"}
    derived = own_gw.http.post("/api/show", json={"model": "derived"}).json()
    assert derived["system"] == "Be brief." and "temperature" in derived["parameters"]  # inherited
    # an older client: the Modelfile's text, with the uploaded file as @sha256:...
    r = own_gw.http.post("/api/create", json={"model": "legacy", "modelfile": f"FROM @{digest}\nPARAMETER top_k 7\n",
                                              "stream": False})
    assert r.status_code == 200, r.text
    assert "top_k" in own_gw.http.post("/api/show", json={"model": "legacy"}).json()["parameters"]
    assert {"imported:latest", "derived:latest", "legacy:latest"} <= _names(own_gw)


@pytest.mark.slow
@pytest.mark.parametrize(("body", "needle"), [
    ({}, "neither 'from' or 'files' was specified"),
    ({"from": "tiny:v1", "files": {"a.gguf": "sha256:" + "1" * 64}}, "not both"),
    ({"files": {"a.gguf": "sha256:" + "1" * 64}}, "upload it first"),
    ({"files": {"a.gguf": "md5:1"}}, "not a sha256 digest"),
    ({"from": "tiny:v1", "parameters": {"temperature": "hot"}}, "temperature"),
    ({"from": "tiny:v1", "parameters": {"not_a_param": 1}}, "not_a_param"),
    ({"from": "tiny:v1", "messages": [{"role": "robot", "content": "x"}]}, "robot"),
    ({"from": "tiny:v1", "quantize": "q4_K_M"}, "quantize"),
    ({"from": "ghost"}, "ghost"),
    ({"modelfile": "FROM /etc/hostname"}, "does not read files by path"),
    ({"modelfile": "FROM tiny:v1", "system": "x"}, "not both"),
    ({"modelfile": "PARAMETER temperature 1"}, "FROM"),
])
def test_create_refuses_bad_requests_with_a_400(own_gw: RunningGateway, body: dict[str, Any], needle: str) -> None:
    r = own_gw.http.post("/api/create", json={"model": "bad", **body})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert not r.json()["error"].startswith("line ")  # JSON requests have no Modelfile lines
    assert "bad:latest" not in _names(own_gw)


@pytest.mark.slow
def test_push_then_pull_through_the_real_registry(own_gw: RunningGateway, registry: RegistryServer,
                                                  tmp_path: Path) -> None:
    from llmctl.api.package import PackageSpec, package

    name = f"{registry.host}/team/pushed:v1"
    gguf = make_gguf(tmp_path / "pushed.gguf", name="pushed", seed=5)  # no blob in common with tiny:v1
    weights = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    package(_settings(own_gw.home), name, PackageSpec(gguf=gguf))
    code, lines = _ndjson(own_gw, "/api/push", {"model": name, "insecure": False})
    assert code == 200, lines
    assert lines[0] == {"status": "retrieving manifest"}
    assert lines[-2:] == [{"status": "pushing manifest"}, {"status": "success"}]
    blobs = [line for line in lines if line["status"].startswith("pushing ") and "digest" in line]
    assert blobs and all(line["status"] == f"pushing {line['digest'][7:19]}" for line in blobs)
    done = {line["digest"] for line in blobs if line["completed"] == line["total"] > 0}
    assert weights in done and all(registry.blob_exists(d) for d in done)

    assert own_gw.http.request("DELETE", "/api/delete", json={"model": name}).status_code == 200
    assert name not in _names(own_gw)
    code, lines = _ndjson(own_gw, "/api/pull", {"model": name})
    assert code == 200, lines
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-3:] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                          {"status": "success"}], lines
    pulled = [line for line in lines if line["status"].startswith("pulling ") and "digest" in line]
    got = {line["digest"] for line in pulled}  # what `delete` collected, fetched again
    assert weights in got and got <= done
    for d in got:  # every blob's last line says it is complete
        last = [line for line in pulled if line["digest"] == d][-1]
        assert last["completed"] == last["total"] > 0
    assert name in _names(own_gw)
    r = own_gw.http.post("/api/pull", json={"model": name, "stream": False})  # nothing left to fetch
    assert r.status_code == 200 and r.json() == {"status": "success"}
    metrics = settled_metrics(own_gw, "llmctl_requests_total", 2, route="/api/pull", code="200")
    assert metric_value(metrics, "llmctl_requests_total", route="/api/pull", code="200") >= 2
    assert metric_value(metrics, "llmctl_requests_total", route="/api/push", code="200") >= 1


@pytest.mark.slow
def test_pull_and_push_errors_are_ollama_shaped(own_gw: RunningGateway, registry: RegistryServer) -> None:
    missing = f"{registry.host}/team/nothing:here"
    for stream in (True, False):  # an error before any progress keeps its status, streamed or not
        r = own_gw.http.post("/api/pull", json={"model": missing, "stream": stream})
        assert r.status_code == 404 and "not found" in r.json()["error"]
    r = own_gw.http.post("/api/pull", json={"model": "library/llama3"})  # a public registry: never contacted
    assert r.status_code == 503 and "LLMCTL_OFFLINE" in r.json()["error"]
    r = own_gw.http.post("/api/push", json={"model": f"{registry.host}/team/not-stored:v1"})
    assert r.status_code == 404 and "not found" in r.json()["error"]
    r = own_gw.http.post("/api/pull", json={"model": "Bad Name!"})
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
    r = own_gw.http.post("/api/pull", json={})
    assert r.status_code == 400 and r.json()["error"] == "model is required"
    registry.kill()  # unreachable: the pull's retries give up, and the client hears why
    r = own_gw.http.post("/api/pull", json={"model": missing, "stream": False})
    assert r.status_code == 502 and "unreachable" in r.json()["error"]


@pytest.mark.slow
def test_a_client_that_leaves_cancels_the_pull_and_a_new_pull_resumes(
        own_gw: RunningGateway, registry: RegistryServer, fault_proxy: Any, docker_config: Path,
        tmp_path: Path) -> None:
    from llmctl.api.package import PackageSpec, package
    from llmctl.api.push import push
    from llmctl.settings import Settings

    pusher = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "pusher"), "DOCKER_CONFIG": str(docker_config)})
    gguf = make_gguf(tmp_path / "big.gguf", name="big", seed=9, tensor_kb=8192)
    weights = hashlib.sha256(gguf.read_bytes()).hexdigest()
    package(pusher, f"{registry.host}/team/big:v1", PackageSpec(gguf=gguf))
    push(pusher, f"{registry.host}/team/big:v1", quiet=True)
    slow = fault_proxy(rate=400_000)  # 8 MB at 400 kB/s: twenty seconds, if nobody stops it

    with own_gw.http.stream("POST", "/api/pull", json={"model": f"{slow.host}/team/big:v1"}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            status = json.loads(line)
            if status.get("digest") == f"sha256:{weights}" and status.get("completed"):
                break  # leave mid-blob
    deadline = time.monotonic() + 10
    while metric_value(own_gw.metrics(), "llmctl_requests_total", route="/api/pull", code="499") < 1:
        assert time.monotonic() < deadline, "the gateway did not notice the client leaving"
        time.sleep(0.1)
    partial = own_gw.home / "store" / "ingest" / f"{weights}.partial"
    while _locked(partial):  # the transfer stops at its next read from the registry and lets go of the file
        assert time.monotonic() < deadline + 10, "the pull went on after the client left"
        time.sleep(0.2)
    assert 0 < partial.stat().st_size < gguf.stat().st_size  # stopped, and kept for a resume
    assert f"{slow.host}/team/big:v1" not in _names(own_gw)

    fast = fault_proxy()  # records what it forwards: the weights come with a Range request, from where it stopped
    r = own_gw.http.post("/api/pull", json={"model": f"{fast.host}/team/big:v1", "stream": False})
    assert r.status_code == 200 and r.json() == {"status": "success"}
    assert ("GET", f"/v2/team/big/blobs/sha256:{weights}", 206) in fast.requests
    assert not partial.exists() and f"{fast.host}/team/big:v1" in _names(own_gw)


# -- tool calls through a gateway whose engine replays llama-server's events -----------------------------------
@pytest.fixture()
def replay_gw(tmp_path: Path) -> Iterator[tuple[RunningGateway, Path]]:
    """A gateway whose `llama-server` is a stand-in: it answers every chat with CALL_EVENTS and records the
    requests it got, so the route's translation both ways is checked byte for byte."""
    from llmctl.api.package import PackageSpec, package

    record = tmp_path / "requests.jsonl"
    fake = tmp_path / "llama-server"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_ENGINE.replace("__RECORD__", repr(str(record)))
                    .replace("__EVENTS__", repr(json.dumps(CALL_EVENTS))))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    home = tmp_path / "home"
    package(_settings(home), "toolish", PackageSpec(gguf=make_gguf(tmp_path / "t.gguf"), chat_template=template))
    gw = start_gateway(home, env={"LLMCTL_OFFLINE": "1", "LLMCTL_LLAMA_SERVER": str(fake)})
    try:
        yield gw, record
    finally:
        gw.stop()


FAKE_ENGINE = '''
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
if "--version" in sys.argv:
    print("version: 1 (stand-in)")
    sys.exit(0)
events = json.loads(__EVENTS__)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(__RECORD__, "ab") as f:
            f.write(body + b"\\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\\n\\n")
        self.wfile.write(b"data: [DONE]\\n\\n")

HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler).serve_forever()
'''


@pytest.mark.slow
def test_tool_calls_through_the_route(replay_gw: tuple[RunningGateway, Path]) -> None:
    gw, record = replay_gw
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": {"city": "Lyon"}}}]},
               {"role": "tool", "content": "12 C", "tool_name": "get_weather"},
               {"role": "user", "content": "And Paris?"}]
    r = gw.http.post("/api/chat", json={"model": "toolish", "messages": history, "tools": TOOLS, "stream": False})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["message"] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_7", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert out["done"] is True and out["done_reason"] == "stop"
    assert out["prompt_eval_count"] == 12 and out["eval_count"] == 9
    sent = json.loads(record.read_text().splitlines()[-1])
    assert sent["tools"] == TOOLS and sent["stream"] is True
    assert sent["messages"][1]["tool_calls"] == [{"id": "call_1_0", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Lyon"}'}}]
    assert sent["messages"][2] == {"role": "tool", "content": "12 C", "tool_call_id": "call_1_0", "name": "get_weather"}

    code, lines = _ndjson(gw, "/api/chat", {"model": "toolish", "messages": history[:1], "tools": TOOLS})
    assert code == 200
    *calls, final = lines
    assert [line["message"].get("tool_calls") for line in calls if line["message"].get("tool_calls")] == [
        out["message"]["tool_calls"]]
    assert all(line["done"] is False for line in calls)
    assert final["done"] is True and final["done_reason"] == "stop" and "tool_calls" not in final["message"]


# -- the shared gateway: real engines --------------------------------------------------------------------------
TOOL_TEMPLATE = (  # Gemma's turns, plus the tools as a system turn: llama-server renders them from the request
    "{{ bos_token }}{% if tools %}<start_of_turn>system\nYou can call: {{ tools | tojson }}<end_of_turn>\n{% endif %}"
    "{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def tools_model(gateway: RunningGateway, gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gemma-tools: the Gemma GGUF with a Jinja chat template that renders `tools` (jinja mode)."""
    from llmctl.api.package import PackageSpec, package

    template = tmp_path_factory.mktemp("tools-tpl") / "gemma-tools.jinja"
    template.write_text(TOOL_TEMPLATE)
    package(_settings(gateway.home), "gemma-tools", PackageSpec(gguf=gemma_gguf, chat_template=template))
    yield "gemma-tools"
    gateway.http.request("DELETE", "/api/delete", json={"model": "gemma-tools"})


@pytest.mark.slow
def test_chat_with_tools_on_a_jinja_model(gateway: RunningGateway, tools_model: str) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    plain = gateway.http.post("/api/chat", json={"model": tools_model, "messages": ask, "stream": False,
                                                 "options": {"num_predict": 4, "temperature": 0}})
    assert plain.status_code == 200, plain.text
    r = gateway.http.post("/api/chat", json={"model": tools_model, "messages": ask, "tools": TOOLS, "stream": False,
                                             "options": {"num_predict": 4, "temperature": 0}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["done"] is True and out["message"]["role"] == "assistant"
    assert out["prompt_eval_count"] > plain.json()["prompt_eval_count"] + 20  # the tools reached the template
    for call in out["message"].get("tool_calls", []):  # a 270M base model may or may not call it
        assert isinstance(call["function"]["arguments"], dict)
    # a conversation with a tool call and its result, streamed
    turns = [*ask, {"role": "assistant", "content": "", "tool_calls": [
                 {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
             {"role": "tool", "content": "18 C and sunny", "tool_name": "get_weather"}]
    code, lines = _ndjson(gateway, "/api/chat", {"model": tools_model, "tools": TOOLS, "messages": turns,
                                                 "options": {"num_predict": 4}})
    assert code == 200 and lines[-1]["done"] is True, lines
    assert lines[-1]["prompt_eval_count"] > out["prompt_eval_count"]


@pytest.mark.slow
def test_tools_on_a_model_without_chat_template_are_a_400(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/chat", json={"model": MODEL, "tools": TOOLS,
                                             "messages": [{"role": "user", "content": "Weather?"}]})
    assert r.status_code == 400 and "cannot call tools" in r.json()["error"] and "completion mode" in r.json()["error"]
    r = gateway.http.post("/api/chat", json={"model": MODEL, "tools": [{"type": "function"}],
                                             "messages": [{"role": "user", "content": "Weather?"}]})
    assert r.status_code == 400 and "tools[0]" in r.json()["error"]
    # a tool result for a template-less model is a plain turn
    r = gateway.http.post("/api/chat", json={"model": MODEL, "stream": False, "options": {"num_predict": 2},
                                             "messages": [{"role": "user", "content": "Weather?"},
                                                          {"role": "tool", "content": "18 C"}]})
    assert r.status_code == 200, r.text


@pytest.mark.slow
def test_delete_stops_the_engine_of_its_last_name(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/copy", json={"source": MODEL, "destination": "gemma-alias"})
    assert r.status_code == 200
    assert gateway.http.request("DELETE", "/api/delete", json={"model": "gemma-alias"}).status_code == 200
    assert any(m["name"] == MODEL for m in gateway.ps())  # the same model under its other name: still loaded

    r = gateway.http.post("/api/create", json={"model": "gemma-solo", "from": MODEL, "system": "Solo.",
                                               "stream": False})
    assert r.status_code == 200, r.text
    assert gateway.http.post("/api/generate", json={"model": "gemma-solo"}).json()["done_reason"] == "load"
    assert any(m["name"] == "gemma-solo:latest" for m in gateway.ps())
    assert gateway.http.request("DELETE", "/api/delete", json={"model": "gemma-solo"}).status_code == 200
    assert all(m["name"] != "gemma-solo:latest" for m in gateway.ps())
    assert gateway.http.post("/api/generate", json={"model": "gemma-solo", "prompt": "hi"}).status_code == 404
    r = gateway.http.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False,
                                                 "options": {"num_predict": 2}})
    assert r.status_code == 200  # the weights it shared with gemma-solo are still there


@pytest.mark.slow
def test_legacy_embeddings(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/embeddings", json={"model": MODEL, "prompt": "The sky is blue."})
    assert r.status_code == 200, r.text
    vector = r.json()["embedding"]
    assert len(vector) == 640 and all(isinstance(x, float) for x in vector)
    normed = gateway.http.post("/api/embed", json={"model": MODEL, "input": "The sky is blue."}).json()["embeddings"][0]
    norm = sum(x * x for x in vector) ** 0.5
    assert abs(norm - 1) > 0.01  # Ollama's legacy vectors are not normalized; /api/embed's are
    assert sum(a * b for a, b in zip(vector, normed)) / norm == pytest.approx(1, abs=1e-4)  # same direction
    assert gateway.http.post("/api/embeddings", json={"model": MODEL, "prompt": ""}).json() == {"embedding": []}
    r = gateway.http.post("/api/embeddings", json={"model": MODEL, "prompt": ["a"]})
    assert r.status_code == 400 and r.json()["error"] == "prompt must be a string"
    assert gateway.http.post("/api/embeddings", json={"model": "ghost", "prompt": "x"}).status_code == 404

