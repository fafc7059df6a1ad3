"""The Ollama API of `llmctl serve`, as an Ollama client uses it: raw HTTP, NDJSON streams."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from fixtures_gateway import MODEL, MODEL_B, MODEL_B_FULL, RunningGateway

pytestmark = pytest.mark.slow


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _ndjson(gateway: RunningGateway, path: str, body: dict) -> list[dict]:
    with gateway.http.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


def test_version_and_root(gateway: RunningGateway) -> None:
    assert gateway.http.get("/api/version").json()["version"]
    assert gateway.http.get("/").status_code == 200
    assert gateway.http.head("/").status_code == 200


def test_tags_lists_models_with_details(gateway: RunningGateway) -> None:
    models = {m["name"]: m for m in gateway.http.get("/api/tags").json()["models"]}
    assert MODEL in models and MODEL_B_FULL in models
    m = models[MODEL]
    assert m["size"] > 200_000_000 and len(m["digest"]) == 64
    assert m["details"]["format"] == "gguf"
    assert m["details"]["family"] == "gemma3"
    assert m["details"]["quantization_level"] == "Q4_K_M"


def test_generate_streams_ndjson_with_final_stats(gateway: RunningGateway) -> None:
    lines = _ndjson(gateway, "/api/generate", {"model": MODEL, "prompt": "Why is the sky blue?",
                                                "options": {"num_predict": 8, "temperature": 0}})
    *tokens, final = lines
    assert tokens and all(t["done"] is False and t["model"] == MODEL for t in tokens)
    assert all("response" in t and "created_at" in t for t in tokens)
    assert final["done"] is True
    assert final["done_reason"] in ("stop", "length")
    assert final["response"] == ""
    assert 0 < final["eval_count"] <= 8
    assert final["eval_count"] >= len(tokens) - 1
    assert final["prompt_eval_count"] > 0
    assert final["total_duration"] >= final["eval_duration"] > 0
    assert final["load_duration"] >= 0 and final["prompt_eval_duration"] >= 0


def test_chat_not_streamed(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/chat", json={
        "model": MODEL, "stream": False, "options": {"num_predict": 6, "seed": 7},
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello!"}],
    })
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["done"] is True and out["model"] == MODEL
    assert out["message"]["role"] == "assistant" and isinstance(out["message"]["content"], str)
    assert out["done_reason"] in ("stop", "length")
    assert 0 < out["eval_count"] <= 6 and out["prompt_eval_count"] > 0
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(out[key], int)


def test_chat_stream_matches_non_stream(gateway: RunningGateway) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say something."}],
            "options": {"num_predict": 8, "temperature": 0}}
    streamed = _ndjson(gateway, "/api/chat", body)
    text = "".join(line["message"]["content"] for line in streamed[:-1])
    r = gateway.http.post("/api/chat", json={**body, "stream": False})
    assert r.status_code == 200, r.text
    whole = r.json()
    assert text == whole["message"]["content"]
    assert streamed[-1]["eval_count"] == whole["eval_count"]


def test_empty_prompt_loads_and_keep_alive_zero_unloads(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/generate", json={"model": MODEL_B, "keep_alive": "10m"})
    assert r.status_code == 200
    assert r.json()["done_reason"] == "load"
    row = next(m for m in gateway.ps() if m["name"] == MODEL_B_FULL)
    assert 9 * 60 < _ts(row["expires_at"]) - time.time() <= 10 * 60 + 5
    assert row["processor"] == "100% CPU" and row["size_vram"] == 0
    r = gateway.http.post("/api/chat", json={"model": MODEL_B, "messages": [], "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"
    assert r.json()["message"] == {"role": "assistant", "content": ""}
    assert all(m["name"] != MODEL_B_FULL for m in gateway.ps())
    r = gateway.http.post("/api/generate", json={"model": MODEL_B, "keep_alive": 0})
    assert r.json()["done_reason"] == "unload" and r.json()["unloaded"] == []


def test_keep_alive_forms(gateway: RunningGateway) -> None:
    def expires(ka: object) -> str:
        r = gateway.http.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False,
                                                      "keep_alive": ka, "options": {"num_predict": 1}})
        assert r.status_code == 200, r.text
        return next(m for m in gateway.ps() if m["name"] == MODEL)["expires_at"]

    assert expires(-1).startswith("9999")
    assert expires("-1m").startswith("9999")
    assert 85 < _ts(expires(90)) - time.time() <= 91
    assert 3590 < _ts(expires("1h")) - time.time() <= 3601
    assert 4 * 60 < _ts(expires("5m")) - time.time() <= 301
    r = gateway.http.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "keep_alive": "soon"})
    assert r.status_code == 400 and "keep_alive" in r.json()["error"]


def test_model_system_and_parameters_apply(gateway: RunningGateway) -> None:
    """tiny-b's Modelfile SYSTEM reaches the engine; its PARAMETER shows in /api/show."""
    shown = gateway.http.post("/api/show", json={"model": MODEL_B}).json()
    assert shown["system"] == "You are model B."
    assert "temperature" in shown["parameters"]
    assert "FROM " in shown["modelfile"]
    assert shown["details"]["family"] == "gemma3"
    out = gateway.http.post("/api/generate", json={"model": MODEL_B, "prompt": "Who are you?", "stream": False,
                                                    "keep_alive": 0, "options": {"num_predict": 2}}).json()
    assert out["prompt_eval_count"] > gateway.http.post("/api/generate", json={
        "model": MODEL, "prompt": "Who are you?", "stream": False, "options": {"num_predict": 2}}).json()["prompt_eval_count"]


def test_embed(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/embed", json={"model": MODEL, "input": ["one", "two", "three"]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["embeddings"]) == 3 and {len(v) for v in out["embeddings"]} == {640}
    assert out["prompt_eval_count"] > 0


def test_errors_in_ollama_shape(gateway: RunningGateway) -> None:
    r = gateway.http.post("/api/generate", json={"model": "ghost", "prompt": "hi"})
    assert r.status_code == 404 and "ghost" in r.json()["error"]
    r = gateway.http.post("/api/chat", json={"model": "ghost", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404 and isinstance(r.json()["error"], str)
    r = gateway.http.post("/api/chat", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = gateway.http.post("/api/generate", json={"prompt": "no model"})
    assert r.status_code == 400 and r.json()["error"] == "model is required"
    r = gateway.http.post("/api/generate", json={"model": MODEL, "prompt": "x", "options": {"temperature": "hot"}})
    assert r.status_code == 400 and "temperature" in r.json()["error"]
    r = gateway.http.post("/api/chat", json={"model": MODEL, "messages": [{"content": "no role"}]})
    assert r.status_code == 400
    r = gateway.http.post("/api/show", json={"model": "ghost"})
    assert r.status_code == 404


def test_base_model_never_answers_empty_through_the_gateway(gateway: RunningGateway) -> None:
    # Greedy, the base model's first tokens for "..." are a blank line, which ends a Q/A transcript answer
    # at once; the gateway retries with end-of-text ignored, as a local `llmctl run` does, and the client
    # never sees the empty first attempt.
    body = {"model": MODEL, "prompt": "...", "options": {"temperature": 0}}
    *tokens, final = _ndjson(gateway, "/api/generate", body)
    streamed = "".join(t["response"] for t in tokens)
    assert streamed.strip() and streamed == streamed.lstrip()
    assert final["done"] is True and 0 < final["eval_count"] <= 48
    whole = gateway.http.post("/api/generate", json={**body, "stream": False}).json()
    assert whole["response"] == streamed
    chat = gateway.http.post("/api/chat", json={"model": MODEL, "stream": False, "options": {"temperature": 0},
                                                "messages": [{"role": "user", "content": "..."}]}).json()
    assert chat["message"]["content"] == streamed
    # `llmctl run` finds the gateway through its state file and gets the same answer
    r = gateway.cli("run", MODEL, "--param", "temperature=0", "...")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == streamed.strip()


def test_raw_generate_is_not_retried(gateway: RunningGateway) -> None:
    # raw: the prompt goes to the engine as is, and whatever it answers (here: stop at once) is the answer
    r = gateway.http.post("/api/generate", json={"model": MODEL, "prompt": "Q: ...\nA:", "raw": True, "stream": False,
                                                 "options": {"temperature": 0, "stop": ["\n\n"]}})
    assert r.status_code == 200, r.text
    assert r.json()["response"].strip() == ""
