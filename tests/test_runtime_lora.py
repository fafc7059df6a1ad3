"""LoRA adapters reach llama-server: `--lora FILE[:SCALE]` and a Modelfile ADAPTER change the answer, scale 0
does not. The adapter is a real GGUF LoRA for the Gemma 3 270M shapes, written with the `gguf` package."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from llmctl.errors import NotFound, UsageError
from llmctl.runtime.process import EngineOptions, EngineProcess

MODEL = "gemma3:270m"
PROMPT = "What is the capital of France?"
GREEDY = ("--param", "temperature=0", "--param", "num_predict=12", "--json")


def _answer(run_cli, *extra: str, model: str = MODEL) -> str:
    r = run_cli("run", model, *GREEDY, *extra, PROMPT)
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)["response"]


def test_lora_changes_the_answer_and_scale_zero_does_not(run_cli, make_lora) -> None:
    adapter = make_lora()
    base = _answer(run_cli)
    with_lora = _answer(run_cli, "--lora", str(adapter))
    at_zero = _answer(run_cli, "--lora", f"{adapter}:0")
    assert base.strip() and with_lora.strip()
    assert with_lora != base
    assert at_zero == base


def test_modelfile_adapter_applies(run_cli, make_lora, tmp_path: Path) -> None:
    adapter = make_lora()
    (tmp_path / "Modelfile").write_text(f"FROM {MODEL}\nADAPTER {adapter}\n")
    r = run_cli("create", "lora-test", "-f", str(tmp_path / "Modelfile"), "-q")
    assert r.code == 0, r.stderr
    assert _answer(run_cli, model="lora-test") == _answer(run_cli, "--lora", str(adapter))
    # --lora with the same file overrides the ADAPTER's scale
    assert _answer(run_cli, "--lora", f"{adapter}:0", model="lora-test") == _answer(run_cli)


def test_engine_loads_adapters_with_their_scales(runtime_settings, gemma_model, engine, make_lora) -> None:
    a = make_lora()
    b = make_lora("other.gguf", seed=1, target="ffn_gate")
    ep = EngineProcess.start(runtime_settings, gemma_model, EngineOptions(parallel=1, lora=((a, 0.5), (b, 0.0))),
                             engine=engine)
    try:
        loaded = httpx.get(ep.base_url + "/lora-adapters", headers=ep.auth_headers).json()
    finally:
        ep.stop()
    assert sorted((Path(x["path"]).name, x["scale"]) for x in loaded) == [("adapter.gguf", 0.5), ("other.gguf", 0.0)]


def test_lora_errors(run_cli, make_lora) -> None:
    r = run_cli("run", MODEL, "--lora", "/nonexistent/adapter.gguf", "hi")
    assert r.code == NotFound.exit_code and "--lora /nonexistent/adapter.gguf: no such file" in r.stderr
    r = run_cli("run", MODEL, "--backend", "gateway", "--lora", str(make_lora()), "hi")
    assert r.code == UsageError.exit_code and "--lora needs a local engine" in r.stderr
