"""The OpenAI API of `llmctl serve`, driven by the real `openai` client against real llama-server engines.

gemma3:270m is a base model (no chat template), so chat goes through the gateway's own prompt rendering;
`gemma-chat` is the same weights packaged with a chat template, so chat passes through llama-server's
OpenAI endpoint. Both paths must look the same to a client.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from fixtures_gateway import MODEL, RunningGateway, engine_headers, metric_value, settled_metrics

pytestmark = pytest.mark.slow

CHAT_MODEL = "gemma-chat"
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_model(gateway: RunningGateway, gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """gemma-chat: the Gemma GGUF packaged with a Jinja chat template (the engine runs in jinja mode)."""
    from llmctl.api.package import PackageSpec, package
    from llmctl.settings import Settings

    template = tmp_path_factory.mktemp("tpl") / "gemma.jinja"
    template.write_text(GEMMA_TEMPLATE)
    package(Settings.from_env({"LLMCTL_HOME": str(gateway.home)}), CHAT_MODEL,
            PackageSpec(gguf=gemma_gguf, chat_template=template))
    return CHAT_MODEL


@pytest.fixture(scope="module")
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_stored_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert client.models.retrieve(MODEL).id == MODEL


@pytest.mark.parametrize("model", [MODEL, "chat"])
def test_chat_completion(client: openai.OpenAI, chat_model: str, model: str) -> None:
    name = chat_model if model == "chat" else model
    r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Name a color."}],
                                       max_tokens=8, temperature=0)
    assert r.object == "chat.completion"
    assert r.model == name
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 8
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("model", [MODEL, "chat"])
def test_chat_streaming_with_usage(client: openai.OpenAI, chat_model: str, model: str) -> None:
    name = chat_model if model == "chat" else model
    stream = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "Count: one, two,"}], max_tokens=6, temperature=0,
        stream=True, stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        assert chunk.model == name
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            finish = c.finish_reason or finish
    assert pieces, "no content streamed"
    assert finish == "length" or finish == "stop"
    assert usage is not None and usage.completion_tokens <= 6 and usage.completion_tokens >= len(pieces) - 1


def test_stream_arrives_token_by_token(gateway: RunningGateway) -> None:
    """No buffering: chunks reach the client spread over the generation, not all at the end."""
    arrivals = []
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 24, "stream": True, "ignore_eos": True}
    with gateway.http.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 24
    spread = arrivals[-1] - arrivals[0]
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:]))
    assert spread > 0.1 and gaps[len(gaps) // 2] > 0.002, "tokens arrived in one burst"


def test_base_model_chat_is_never_empty(client: openai.OpenAI) -> None:
    # the greedy first attempt ends at once (see test_gateway_ollama); the gateway's retry answers instead
    out = client.chat.completions.create(model=MODEL, temperature=0, messages=[{"role": "user", "content": "..."}])
    text = out.choices[0].message.content or ""
    assert text.strip() and text == text.lstrip()
    stream = client.chat.completions.create(model=MODEL, temperature=0, stream=True,
                                            messages=[{"role": "user", "content": "..."}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=5, temperature=0)
    assert r.object == "text_completion"
    assert r.model == MODEL
    assert r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens <= 5


def test_seed_and_stop(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL, prompt="A list of fruits: apple,", max_tokens=12, temperature=1.0, seed=1234)
    a = client.completions.create(**kwargs).choices[0].text
    b = client.completions.create(**kwargs).choices[0].text
    assert a == b, "the same seed gave different samples"
    first_word = a.strip().split()[0] if a.strip() else ""
    if first_word:
        stopped = client.completions.create(**kwargs, stop=[first_word])
        assert first_word not in stopped.choices[0].text
        assert stopped.choices[0].finish_reason == "stop"


def test_four_concurrent_streams_all_complete_in_parallel(client: openai.OpenAI) -> None:
    """4 streams on a --parallel 4 engine: all finish, and they overlap (continuous batching, no queue)."""
    results: dict[int, dict[str, float | int | str]] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            start = time.monotonic()
            first = None
            n = 0
            finish = None
            for chunk in client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Tell story number {i}."}], max_tokens=16,
                stream=True, temperature=0.7, seed=i,
            ):
                for c in chunk.choices:
                    if c.delta.content:
                        first = first or time.monotonic()
                        n += 1
                    finish = c.finish_reason or finish
            results[i] = {"start": start, "first": first or 0.0, "end": time.monotonic(), "n": n, "finish": str(finish)}
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 4
    assert all(r["n"] > 0 and r["finish"] in ("stop", "length") for r in results.values())
    # every stream had its first token before any stream ended: they ran side by side
    assert max(r["first"] for r in results.values()) < min(r["end"] for r in results.values())


def test_embeddings(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model=MODEL, input=["red apple", "blue sky"])
    assert len(r.data) == 2
    dims = {len(d.embedding) for d in r.data}
    assert dims == {640}  # Gemma 3 270M's embedding length
    assert r.data[0].embedding != r.data[1].embedding


def test_unknown_model_is_404_in_openai_shape(client: openai.OpenAI, gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-model" in str(info.value)
    r = gateway.http.post("/v1/completions", json={"model": "no-such-model", "prompt": "x"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "not_found_error" and "no-such-model" in err["message"]


def test_bad_requests_are_400(client: openai.OpenAI, gateway: RunningGateway) -> None:
    r = gateway.http.post("/v1/chat/completions", content=b'{"model": "gemma3:270m", "messages": [',
                          headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=7)
    assert "temperature" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=2)
    r = gateway.http.post("/v1/chat/completions", json={"model": MODEL, "messages": "hello"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_client_disconnect_cancels_upstream(gateway: RunningGateway) -> None:
    """Closing a stream early frees the engine's slot at once (it would otherwise generate 2000 tokens)."""
    before = metric_value(gateway.metrics(), "llmctl_request_errors_total", kind="cancelled")
    body = {"model": MODEL, "prompt": "Write a long essay.", "max_tokens": 2000, "stream": True, "ignore_eos": True}
    with httpx.Client(base_url=gateway.url, timeout=60, trust_env=False) as c:
        with c.stream("POST", "/v1/completions", json=body) as r:
            got = 0
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    got += 1
                if got >= 3:
                    break
    engine = next(m for m in gateway.ps() if m["name"] == MODEL and m["mode"] == "generate")
    deadline = time.monotonic() + 10
    busy = True
    while time.monotonic() < deadline:
        slots = httpx.get(f"http://127.0.0.1:{engine['port']}/slots", timeout=5, trust_env=False,
                          headers=engine_headers(engine["pid"])).json()
        busy = any(s.get("is_processing") for s in slots)
        if not busy:
            break
        time.sleep(0.1)
    assert not busy, "the engine kept generating after the client left"
    deadline = time.monotonic() + 5
    while metric_value(gateway.metrics(), "llmctl_request_errors_total", kind="cancelled") <= before:
        assert time.monotonic() < deadline, "the cancelled request was not counted"
        time.sleep(0.1)


def test_metrics_after_traffic(gateway: RunningGateway, client: openai.OpenAI) -> None:
    assert gateway.http.get("/v1/models/no-such-model").status_code == 404
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                   stream=False)
    list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                        stream=True))
    text = settled_metrics(gateway, "llmctl_requests_total", 2, route="/v1/chat/completions", code="200")
    assert metric_value(text, "llmctl_requests_total", route="/v1/chat/completions", code="200") >= 2
    assert metric_value(text, "llmctl_requests_total", code="404") >= 1
    assert metric_value(text, "llmctl_time_to_first_token_seconds_count", model=MODEL) >= 1
    assert metric_value(text, "llmctl_tokens_per_second_count", model=MODEL) >= 1
    assert metric_value(text, "llmctl_generated_tokens_total", model=MODEL) >= 3
    assert metric_value(text, "llmctl_loaded_models") >= 1
    assert 'llmctl_loaded_model_info{id="' in text and 'processor="100% CPU"' in text
    # a stream's bookkeeping runs just after its last byte ([DONE]) went out, so the client may be faster
    deadline = time.monotonic() + 5
    while metric_value(gateway.metrics(), "llmctl_requests_in_flight") != 0:
        assert time.monotonic() < deadline, "a finished request still counts as in flight"
        time.sleep(0.05)


def _sse_events(gateway: RunningGateway, path: str, body: dict) -> list[bytes]:
    with gateway.http.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        raw = r.read()
    return [e for e in raw.split(b"\n\n") if e]


def test_passthrough_stream_keeps_the_engines_events(gateway: RunningGateway, chat_model: str) -> None:
    """A jinja-mode chat stream leaves as llama-server wrote it (its keys, order, ids and timings), only `model`
    rewritten: no per-token JSON round trip. Its text is the non-streamed answer's."""
    body = {"model": chat_model, "messages": [{"role": "user", "content": 'Say "hi" to the café in 東京.'}],
            "max_tokens": 10, "temperature": 0, "seed": 3}
    events = _sse_events(gateway, "/v1/chat/completions",
                         {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-1] == b"data: [DONE]" and all(e.startswith(b"data: {") for e in events[:-1])
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    for raw, chunk in zip(events, chunks):
        assert raw[6:] == json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()  # compact, as sent
        assert chunk["model"] == chat_model and chunk["object"] == "chat.completion.chunk"
        assert list(chunk)[:2] == ["choices", "created"] and "system_fingerprint" in chunk  # llama-server's
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 10 and "timings" in chunks[-1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    whole = gateway.http.post("/v1/chat/completions", json=body).json()
    assert text and text == whole["choices"][0]["message"]["content"]


@pytest.mark.parametrize("model", [MODEL, "chat"])
def test_ollama_chat_streams_the_openai_answer(gateway: RunningGateway, chat_model: str, model: str) -> None:
    """Ollama's NDJSON lines carry the same text as the OpenAI answer, on both engine paths (jinja: OpenAI
    events read without a JSON parse; completion mode: /completion events), streamed or not."""
    name = chat_model if model == "chat" else model
    messages = [{"role": "user", "content": 'Write "yes", then a new line, then "no".'}]
    with gateway.http.stream("POST", "/api/chat", json={"model": name, "messages": messages,
                                                        "options": {"num_predict": 12, "temperature": 0}}) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    *tokens, final = lines
    assert tokens and all(t["done"] is False and t["message"]["role"] == "assistant" for t in tokens)
    assert final["done"] is True and final["eval_count"] >= len(tokens) - 1
    streamed = "".join(t["message"]["content"] for t in tokens)
    whole = gateway.http.post("/api/chat", json={"model": name, "messages": messages, "stream": False,
                                                 "options": {"num_predict": 12, "temperature": 0}}).json()
    assert streamed == whole["message"]["content"]
    openai_text = gateway.http.post("/v1/chat/completions", json={
        "model": name, "messages": messages, "max_tokens": 12, "temperature": 0}).json()["choices"][0]["message"]
    assert streamed == openai_text["content"]
