"""The gateway's bounds that involve its engines and jobs (issue #11, part 4), against a real `llmctl serve`:
Go TEMPLATE bombs (refused at create; at request time rendered off the event loop, within limits, while other
requests are answered), keep_alive edges, a model's queue, the job limit, load-time option ranges, and
resolving `name@sha256:...` without reading a blob.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from fixtures_gateway import MODEL, RunningGateway, private_home, start_gateway

pytestmark = pytest.mark.slow

SLOW_TEMPLATE = ("{{ if gt (len .Messages) 4 }}{{ range 5000 }}{{ range 5000 }}{{ end }}{{ end }}{{ end }}"
                 "{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:")
WIDE_TEMPLATE = ('{{ if gt (len .Messages) 4 }}{{ range 100000 }}{{ printf "%4000d" 1 }}{{ end }}{{ end }}'
                 "{{ range .Messages }}{{ .Content }}\n{{ end }}")
# create's sample render has a system message and three turns (4): these templates only explode beyond that
FIVE_MESSAGES = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
              {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}]


@pytest.fixture(scope="module")
def lim_home(tmp_path_factory: pytest.TempPathFactory, gateway_store: Path) -> Path:
    return private_home(tmp_path_factory.mktemp("limits"), gateway_store)


@pytest.fixture(scope="module")
def lim_gw(lim_home: Path) -> Iterator[RunningGateway]:
    env = {"LLMCTL_OFFLINE": "1", "LLMCTL_TEMPLATE_MAX_ITERATIONS": "20000000", "LLMCTL_MAX_QUEUE": "0",
           "LLMCTL_MAX_JOBS": "1"}
    gw = start_gateway(lim_home, "--parallel", "1", "--ctx-size", "4096", env=env)
    try:
        yield gw
    finally:
        assert gw.stop() == 0, gw.stderr()[-2000:]
        assert "Traceback" not in gw.stderr(), gw.stderr()[-3000:]


def _state(home: Path) -> tuple[bytes, tuple[str, ...]]:
    store = home / "store"
    return (store / "index.json").read_bytes(), tuple(sorted(p.name for p in (store / "blobs" / "sha256").iterdir()))


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("template, needle", [
    ('{{ printf "%0999999999d" 1 }}', "LLMCTL_TEMPLATE_MAX_WIDTH"),
    ("{{ range 100000000 }}{{ . }}{{ end }}", "LLMCTL_TEMPLATE_MAX_ITERATIONS"),
    ('{{ range .Messages }}{{ range 100000 }}{{ printf "%4000d" 1 }}{{ end }}{{ end }}', "LLMCTL_TEMPLATE_MAX_OUTPUT"),
    ("{{ if 1 }}" * 200 + "{{ end }}" * 200, "LLMCTL_TEMPLATE_MAX_DEPTH"),
    ("{{ .Prompt ", "does not parse"),
])
def test_template_bombs_are_refused_at_create(lim_gw: RunningGateway, lim_home: Path, template: str,
                                              needle: str) -> None:
    before = _state(lim_home)
    r = lim_gw.http.post("/api/create", json={"model": "bomb", "from": MODEL, "template": template, "stream": False})
    assert r.status_code == 400 and needle in r.json()["error"], r.text
    assert _state(lim_home) == before


def test_a_template_renders_off_the_loop_within_its_limits(lim_gw: RunningGateway) -> None:
    """A TEMPLATE that passes create's sample render but loops 20 million times on a longer conversation: the
    gateway keeps answering other requests while it renders, then the chat is a 400 that names the limit.
    One that would print gigabytes stops at LLMCTL_TEMPLATE_MAX_OUTPUT without the gateway's memory growing."""
    for name, template in (("slowtpl", SLOW_TEMPLATE), ("widetpl", WIDE_TEMPLATE)):
        r = lim_gw.http.post("/api/create", json={"model": name, "from": MODEL, "template": template, "stream": False})
        assert r.status_code == 200, r.text
    try:
        assert lim_gw.http.post("/api/generate", json={"model": "slowtpl"}).status_code == 200  # loaded first
        outcome: dict[str, Any] = {}

        def bomb() -> None:
            outcome["response"] = httpx.post(lim_gw.url + "/api/chat", json={
                "model": "slowtpl", "messages": FIVE_MESSAGES, "stream": False}, timeout=600, trust_env=False)

        thread = threading.Thread(target=bomb)
        thread.start()
        answered_during = 0
        deadline = time.monotonic() + 600
        while thread.is_alive() and time.monotonic() < deadline:
            assert lim_gw.http.get("/health", timeout=60).status_code == 200
            assert lim_gw.http.get("/api/tags", timeout=60).status_code == 200
            if thread.is_alive():
                answered_during += 1
        thread.join(timeout=600)
        r = outcome["response"]
        assert r.status_code == 400 and "LLMCTL_TEMPLATE_MAX_ITERATIONS" in r.json()["error"], r.text
        assert answered_during >= 2, "the gateway answered nothing while the template rendered"

        rss = _rss(lim_gw.proc.pid)
        r = lim_gw.http.post("/api/chat", json={"model": "widetpl", "messages": FIVE_MESSAGES, "stream": False})
        assert r.status_code == 400 and "LLMCTL_TEMPLATE_MAX_OUTPUT" in r.json()["error"], r.text
        r = lim_gw.http.post("/v1/chat/completions", json={"model": "widetpl", "messages": FIVE_MESSAGES})
        assert r.status_code == 400 and "LLMCTL_TEMPLATE_MAX_OUTPUT" in r.json()["error"]["message"]
        assert _rss(lim_gw.proc.pid) < rss + 512 * 1024 * 1024
    finally:
        for name in ("slowtpl", "widetpl"):
            lim_gw.http.request("DELETE", "/api/delete", json={"model": name})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "1e300"])
def test_keep_alive_nan_and_overflow_are_400_and_ps_keeps_working(lim_gw: RunningGateway, value: str) -> None:
    """Sent as raw JSON numbers (`NaN` and `Infinity` are what a JavaScript client's JSON.stringify never
    writes but Python's json accepts) and as strings."""
    raw = '{"model": "%s", "input": "x", "keep_alive": %s}' % (MODEL, value)
    for body in (raw, json.dumps({"model": MODEL, "input": "x", "keep_alive": value})):
        for path in ("/api/generate", "/api/chat", "/api/embed"):
            r = lim_gw.http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and "keep_alive" in r.json()["error"], (path, body, r.text)
    assert lim_gw.http.get("/api/ps").status_code == 200


def test_the_longest_keep_alive_loads_and_ps_shows_it(lim_gw: RunningGateway) -> None:
    r = lim_gw.http.post("/api/generate", json={"model": MODEL, "keep_alive": "2562047h"})  # Go's longest duration
    assert r.status_code == 200, r.text
    ps = lim_gw.http.get("/api/ps")
    assert ps.status_code == 200
    row = next(m for m in ps.json()["models"] if m["name"] == MODEL)
    assert int(row["expires_at"][:4]) > 2300
    assert lim_gw.http.post("/api/generate", json={"model": MODEL, "keep_alive": 0}).status_code == 200


def test_a_models_queue_is_bounded(lim_gw: RunningGateway) -> None:
    """--parallel 1 and LLMCTL_MAX_QUEUE=0: while one answer streams, the next request is a 503 at once (as
    Ollama's "server busy" beyond OLLAMA_MAX_QUEUE), and is served again once the first is done."""
    # 4000 tokens: longer than the rest of this test takes, and more than socket buffers hold unread
    long = {"model": MODEL, "prompt": "Tell a long story.", "max_tokens": 4000, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=lim_gw.url, timeout=120, trust_env=False) as c:
        with c.stream("POST", "/v1/completions", json=long) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped line iterator closes the connection (a cancel)
            for line in lines:
                if line.startswith("data: {"):
                    break
            r = lim_gw.http.post("/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 1})
            assert r.status_code == 503 and r.json()["error"]["type"] == "server_error", r.text
            assert "LLMCTL_MAX_QUEUE" in r.json()["error"]["message"]
            r = lim_gw.http.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False})
            assert r.status_code == 503 and "server busy" in r.json()["error"]
    deadline = time.monotonic() + 60
    while True:  # the first request's slot is released when its stream closes
        r = lim_gw.http.post("/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 1})
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text


def test_jobs_are_bounded(lim_gw: RunningGateway, registry, fault_proxy, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """LLMCTL_MAX_JOBS=1: while a (throttled) pull runs, another pull is a 503; after the client leaves and the
    job stops, pulls are accepted again."""
    from fixtures_registry import make_gguf

    name = "team/slow:v1"
    assert cli("package", "--gguf", str(make_gguf(tmp_path / "slow.gguf", seed=9, tensor_kb=512)), "--push",
               f"{registry.host}/{name}").code == 0
    proxy = fault_proxy(rate=32 * 1024)
    with httpx.Client(base_url=lim_gw.url, timeout=120, trust_env=False) as c:
        with c.stream("POST", "/api/pull", json={"model": f"{proxy.host}/{name}"}) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped line iterator closes the connection (a cancel)
            for line in lines:  # until the blob's download has begun
                if line.strip() and json.loads(line).get("digest"):
                    break
            r = lim_gw.http.post("/api/pull", json={"model": f"{registry.host}/{name}"})
            assert r.status_code == 503 and "LLMCTL_MAX_JOBS" in r.json()["error"]
    deadline = time.monotonic() + 120
    while True:
        r = lim_gw.http.post("/api/pull", json={"model": f"{registry.host}/team/none:v1", "stream": False})
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 404, r.text


def test_load_options_out_of_range_are_400(lim_gw: RunningGateway, lim_home: Path) -> None:
    before = _state(lim_home)
    for params in ({"num_ctx": -5}, {"num_ctx": 10**9}, {"num_thread": 100000}, {"num_batch": -1},
                   {"num_gpu": -7}):
        r = lim_gw.http.post("/api/create", json={"model": "badctx", "from": "tiny:v1", "parameters": params})
        assert r.status_code == 400 and next(iter(params)) in r.json()["error"], (params, r.text)
    r = lim_gw.http.post("/api/create", json={"model": "badctx", "modelfile": "FROM tiny:v1\nPARAMETER num_ctx 99999999999"})
    assert r.status_code == 400 and "num_ctx" in r.json()["error"]
    for options in ({"num_ctx": "big"}, {"num_ctx": -1}, {"num_thread": 1.5}, {"num_batch": 10**30}):
        r = lim_gw.http.post("/api/generate", json={"model": MODEL, "prompt": "hi", "options": options})
        assert r.status_code == 400, (options, r.text)
    assert _state(lim_home) == before


def test_num_ctx_is_clamped_to_the_trained_context(lim_home: Path) -> None:
    """A PARAMETER num_ctx beyond what the model was trained for (a pulled model may say anything) starts the
    engine at the trained context; one beyond any range is ignored (the default applies)."""
    from llmctl.api.models import get_model
    from llmctl.runtime.engine import Engine
    from llmctl.runtime.launch import EngineOptions, build_command, context_size
    from llmctl.settings import Settings

    settings = Settings.from_env({"LLMCTL_HOME": str(lim_home)})
    model = get_model(settings, MODEL)
    trained = model.facts.context_size
    assert trained and trained > 4096
    engine = Engine(path=Path("/bin/true"), version="test", kind="cpu")  # a command is built, nothing runs
    for num_ctx, expected in ((1_000_000, trained), (10**12, 4096), (2048, 2048)):
        m = replace(model, parameters={**model.parameters, "num_ctx": num_ctx})
        options = EngineOptions.for_model(m, parallel=2)
        assert context_size(m, options) == expected
        cmd = build_command(settings, m, options, engine, "127.0.0.1", 1, "completion")
        assert cmd[cmd.index("-c") + 1] == str(expected * 2)


def test_resolving_a_blob_digest_reads_no_blob(lim_gw: RunningGateway, lim_home: Path) -> None:
    """`gemma3@sha256:<the GGUF's digest>` is not a manifest: 404, found out from the file's size, not by
    reading its 253 MB (the gateway's read bytes are counted by the kernel)."""
    blobs = lim_home / "store" / "blobs" / "sha256"
    gguf = max(blobs.iterdir(), key=lambda p: p.stat().st_size)

    def read_bytes() -> int:
        io = dict(line.split(": ") for line in Path(f"/proc/{lim_gw.proc.pid}/io").read_text().splitlines())
        return int(io["rchar"])

    before = read_bytes()
    for path, body in (("/api/show", {"model": f"gemma3@sha256:{gguf.name}"}),
                       ("/api/chat", {"model": f"gemma3@sha256:{gguf.name}", "messages": [{"role": "user", "content": "x"}]}),
                       ("/v1/chat/completions", {"model": f"x@sha256:{gguf.name}", "messages": [{"role": "user", "content": "x"}]})):
        r = lim_gw.http.post(path, json=body)
        assert r.status_code == 404, (path, r.text)
    assert read_bytes() - before < gguf.stat().st_size // 10
