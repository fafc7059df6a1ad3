"""HTTP fuzzing of a real `llmctl serve` with hypothesis: 2,000 generated requests, no 5xx, no traceback.

The requests follow the routes' shapes (the OpenAI, Responses, Anthropic Messages, Ollama and console bodies
with their field names; Anthropic's blocks and the Responses API's items) with values from anywhere in JSON,
plus raw bodies that are not JSON, odd content types, unknown paths and methods. Most must be 4xx; well-formed generation requests reach the real engine with a 1-token limit so they answer
fast. The only 5xx accepted are the explicit ones for this setup: 503 for a registry LLMCTL_OFFLINE forbids
(a name outside the local registry) or a full queue. Store-changing routes run on the gateway's own store,
whose default registry is a real local docker-registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fixtures_gateway import MODEL, RunningGateway, private_home, start_gateway

pytestmark = pytest.mark.slow
REQUESTS = 2000

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                    max_leaves=12)
NAMES = st.one_of(st.sampled_from([MODEL, "tiny:v1", "gemma3", "nope:v1", "", " ", "UPPER/Case", "a" * 300,
                                   "x@sha256:" + "0" * 64, "hf.co/org/repo", "docker.io/library/x", "../../etc",
                                   "Team/Model:TAG"]), st.text(max_size=40), JSON)
MESSAGES = st.one_of(st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool"]),
                                                     "content": st.one_of(st.text(max_size=40), JSON)}), max_size=3),
                     JSON)
OPTIONS = st.one_of(st.dictionaries(st.sampled_from(["temperature", "top_p", "top_k", "seed", "num_predict", "stop",
                                                     "num_ctx", "num_batch", "num_thread", "repeat_penalty", "min_p"]),
                                    SCALARS, max_size=4), JSON)
KEEP_ALIVE = st.one_of(st.sampled_from(["5m", "-1", "0", "NaN", "1e300", "inf", "1h30m", "99999999999h", "x"]),
                       SCALARS)
COMMON = {"model": NAMES, "stream": st.one_of(st.booleans(), SCALARS), "keep_alive": KEEP_ALIVE}
# Anthropic's blocks and the Responses API's items, with fields from anywhere in JSON
BLOCK = st.builds(lambda kind, rest: {"type": kind, **rest},
                  st.sampled_from(["text", "tool_use", "tool_result", "thinking", "image", "input_text", "output_text",
                                   "message", "function_call", "function_call_output", "reasoning", "item_reference"]),
                  st.dictionaries(st.sampled_from(["text", "id", "name", "input", "content", "tool_use_id", "role",
                                                   "call_id", "arguments", "output", "summary", "thinking"]),
                                  JSON, max_size=3))
TURNS = st.one_of(st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer"]),
                                                  "content": st.one_of(st.text(max_size=20), st.lists(BLOCK, max_size=2),
                                                                       JSON)}), max_size=3),
                  st.lists(BLOCK, max_size=3), JSON)
TOOLS = st.one_of(st.lists(st.one_of(st.just({"type": "function", "name": "f", "parameters": {"type": "object"}}),
                                     st.just({"name": "f", "input_schema": {"type": "object"}}), JSON), max_size=2), JSON)
RESPONSES = {"model": NAMES, "input": st.one_of(st.text(max_size=30), TURNS), "instructions": JSON,
             "max_output_tokens": SCALARS, "temperature": SCALARS, "top_p": SCALARS, "stream": SCALARS, "tools": TOOLS,
             "tool_choice": JSON, "text": JSON, "store": SCALARS, "previous_response_id": SCALARS}
MESSAGES_API = {"model": NAMES, "messages": TURNS, "system": st.one_of(JSON, st.lists(BLOCK, max_size=2)),
                "max_tokens": SCALARS, "stop_sequences": JSON, "temperature": SCALARS, "top_p": SCALARS,
                "top_k": SCALARS, "stream": SCALARS, "tools": TOOLS, "tool_choice": JSON}

# route -> (method, optional body fields); each field is present or not, with a strategy for its value
ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "/api/generate": ("POST", {**COMMON, "prompt": st.one_of(st.text(max_size=40), JSON), "system": JSON,
                               "raw": SCALARS, "format": st.one_of(st.just("json"), JSON), "options": OPTIONS,
                               "images": JSON, "suffix": JSON}),
    "/api/chat": ("POST", {**COMMON, "messages": MESSAGES, "options": OPTIONS, "tools": JSON,
                           "format": st.one_of(st.just("json"), JSON)}),
    "/api/embed": ("POST", {**COMMON, "input": st.one_of(st.text(max_size=20), JSON)}),
    "/api/embeddings": ("POST", {**COMMON, "prompt": st.one_of(st.text(max_size=20), JSON), "options": OPTIONS}),
    "/api/show": ("POST", {"model": NAMES, "name": NAMES, "verbose": SCALARS}),
    "/api/copy": ("POST", {"source": NAMES, "destination": NAMES}),
    "/api/delete": ("DELETE", {"model": st.one_of(st.just("tiny-fuzz"), NAMES.filter(lambda n: n != MODEL)),
                               "name": NAMES.filter(lambda n: n != MODEL)}),
    "/api/create": ("POST", {"model": NAMES, "from": NAMES, "files": JSON, "adapters": JSON, "template": JSON,
                             "system": JSON, "parameters": st.one_of(OPTIONS, JSON), "messages": MESSAGES,
                             "license": JSON, "modelfile": st.one_of(st.text(max_size=60), JSON),
                             "quantize": JSON, "stream": SCALARS}),
    "/api/pull": ("POST", {"model": NAMES, "insecure": SCALARS, "stream": SCALARS}),
    "/api/push": ("POST", {"model": NAMES, "insecure": SCALARS, "stream": SCALARS}),
    "/v1/chat/completions": ("POST", {"model": NAMES, "messages": MESSAGES, "temperature": SCALARS,
                                      "top_p": SCALARS, "max_tokens": SCALARS, "stop": JSON, "seed": SCALARS,
                                      "stream": SCALARS, "stream_options": JSON, "presence_penalty": SCALARS}),
    "/v1/completions": ("POST", {"model": NAMES, "prompt": st.one_of(st.text(max_size=40), JSON),
                                 "max_tokens": SCALARS, "temperature": SCALARS, "stop": JSON, "stream": SCALARS,
                                 "seed": SCALARS}),
    "/v1/embeddings": ("POST", {"model": NAMES, "input": st.one_of(st.text(max_size=20), JSON)}),
    "/v1/responses": ("POST", RESPONSES), "/v1/responses/input_tokens": ("POST", RESPONSES),
    "/v1/messages": ("POST", MESSAGES_API), "/v1/messages/count_tokens": ("POST", MESSAGES_API),
    "/api/llmctl/transfers": ("POST", {"kind": st.one_of(st.sampled_from(["pull", "push"]), SCALARS), "model": NAMES,
                                       "insecure": SCALARS}),
}
GETS = ["/", "/health", "/metrics", "/api/version", "/api/tags", "/api/ps", "/v1/models", "/api/llmctl/models",
        "/api/llmctl/stats", "/api/llmctl/transfers", "/ui/", "/ui/auth.json"]
GENERATION = {"/api/generate", "/api/chat", "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"}
LIMIT_FIELD = {"/v1/responses": "max_output_tokens", "/v1/messages": "max_tokens"}  # else max_tokens + num_predict


@st.composite
def shaped(draw: Any) -> tuple[str, str, dict[str, str], bytes]:
    """A request for one route: its fields (each present or not), JSON-encoded."""
    path = draw(st.sampled_from(sorted(ROUTES)))
    method, fields = ROUTES[path]
    body = {k: draw(v) for k, v in fields.items() if draw(st.booleans())}
    if path in GENERATION and body.get("model") == MODEL:  # a real answer: one token, so it comes back fast
        if path in LIMIT_FIELD:
            body[LIMIT_FIELD[path]] = 1
        else:
            body.update(max_tokens=1, options={**(body["options"] if isinstance(body.get("options"), dict) else {}),
                                               "num_predict": 1})
    return method, path, {"Content-Type": "application/json"}, json.dumps(body).encode()


@st.composite
def odd(draw: Any) -> tuple[str, str, dict[str, str], bytes]:
    """What no client library sends: not JSON, JSON that is not an object, odd types and methods, other paths."""
    path = draw(st.one_of(st.sampled_from(sorted(ROUTES) + GETS),
                          st.builds(lambda h: f"/api/blobs/{quote(h)}", st.one_of(st.text(max_size=70),
                                                                                  st.just("sha256:" + "a" * 64))),
                          st.builds(lambda n: f"/v1/models/{quote(n)}", st.text(min_size=1, max_size=30)),
                          st.text(max_size=30).map(lambda t: "/" + quote(t))))
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "PATCH"]))
    body = draw(st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"{", b"null", b"[]", b"1", b'"x"',
                                                                     b"[" * 5000 + b"]" * 5000, b'{"model": NaN}',
                                                                     b'{"model": "x", "model": 1}']),
                          JSON.map(lambda j: json.dumps(j).encode())))
    ctype = draw(st.sampled_from(["application/json", "", "application/x-www-form-urlencoded", "text/plain",
                                  "application/octet-stream", "application/json; charset=utf-8"]))
    return method, path, {"Content-Type": ctype} if ctype else {}, body


REQUEST = st.one_of(shaped(), shaped(), shaped(), odd(), st.sampled_from(GETS).map(lambda p: ("GET", p, {}, b"")))


@pytest.fixture(scope="module")
def fuzz_gw(tmp_path_factory: pytest.TempPathFactory, gateway_store: Path) -> Iterator[RunningGateway]:
    from fixtures_registry import RegistryServer

    root = tmp_path_factory.mktemp("fuzz")
    registry = RegistryServer(root / "registry").start()  # the default registry: pulls and pushes stay local
    home = private_home(root, gateway_store)
    gw = start_gateway(home, "--parallel", "2", "--ctx-size", "512", "--keep-alive", "-1",
                       env={"LLMCTL_OFFLINE": "1", "LLMCTL_REGISTRY": registry.host, "DOCKER_CONFIG": str(root)})
    try:
        assert gw.http.post("/api/generate", json={"model": MODEL}).status_code == 200  # loaded once
        yield gw
    finally:
        gw.stop()
        registry.kill()


def _explicit(status: int, text: str) -> bool:
    """The 5xx this setup may answer on purpose: a registry LLMCTL_OFFLINE forbids, a full queue."""
    return status == 503 and ("LLMCTL_OFFLINE" in text or "server busy" in text)


def test_two_thousand_generated_requests_get_no_5xx_and_no_traceback(fuzz_gw: RunningGateway) -> None:
    sent: list[int] = []
    client = httpx.Client(base_url=fuzz_gw.url, timeout=120, trust_env=False)

    @settings(max_examples=REQUESTS, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(REQUEST)
    def one(request: tuple[str, str, dict[str, str], bytes]) -> None:
        method, path, headers, body = request
        r = client.request(method, path, headers=headers, content=body or None)
        sent.append(r.status_code)
        assert r.status_code < 500 or _explicit(r.status_code, r.text), (method, path, body[:300], r.status_code,
                                                                         r.text[:300])

    try:
        one()
    finally:
        client.close()
    assert len(sent) >= REQUESTS
    codes = {c // 100 for c in sent}
    assert 2 in codes and 4 in codes  # both answers and refusals were exercised
    log = fuzz_gw.stderr()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


ONCE_500 = [  # shapes that were a 500 before (the first three from the engine's JSON parser)
    ("/v1/embeddings", {"model": MODEL, "input": [None]}),
    ("/v1/embeddings", {"model": MODEL, "input": ["a", 1]}),
    ("/v1/chat/completions", b'{"model": "gemma3:270m", "messages": [{"role": "user", "content": "hi"}], "top_p": NaN}'),
    ("/v1/responses", {"model": MODEL, "input": "hi", "text": True}),
    ("/v1/responses/input_tokens", {"model": MODEL, "input": [{"type": "reasoning", "content": 5}]}),
    ("/v1/responses", {"model": MODEL, "input": [{"role": ["user"], "content": "hi"}]}),
    ("/v1/messages", {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
                      "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": ["any"]}}),
]


@pytest.mark.parametrize(("path", "body"), ONCE_500)
def test_shapes_that_were_a_500_are_a_400(fuzz_gw: RunningGateway, path: str, body: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = fuzz_gw.http.post(path, content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text


def test_embeddings_take_openais_token_id_shapes(fuzz_gw: RunningGateway) -> None:
    """The shapes the embeddings check lets through are the ones the engine answers."""
    for inp, vectors in (("red apple", 1), (["red", "blue"], 2), ([2, 3, 4], 1), ([[2, 3], [4, 5]], 2)):
        r = fuzz_gw.http.post("/v1/embeddings", json={"model": MODEL, "input": inp})
        assert r.status_code == 200 and len(r.json()["data"]) == vectors, (inp, r.text)
