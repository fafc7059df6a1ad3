"""`llmctl run`: one-shot prompts, stdin, --json, parameters, Modelfile parts reaching the engine, errors,
the gateway and llama-cpp-python backends, and the interactive chat driven through a pty."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llmctl.api.run import Session
from llmctl.errors import EngineError, UsageError

MODEL = "gemma3:270m"


def test_run_prompt_streams_a_real_answer(run_cli) -> None:
    r = run_cli("run", MODEL, "Why is the sky blue?", "--param", "num_predict=32")
    assert r.code == 0, r.stderr
    assert r.stdout.strip() and r.stdout.endswith("\n")
    assert r.stderr == ""  # not a terminal: no spinner, no progress


def test_piped_stdin_is_the_prompt(run_cli) -> None:
    r = run_cli("run", MODEL, "--param", "num_predict=16", "--json", input="hi\n")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["response"].strip()
    assert data["prompt"] == "<bos>Q: hi\nA:"  # what the engine evaluated


def test_stdin_and_words_are_joined(run_cli) -> None:
    r = run_cli("run", MODEL, "--json", "--param", "num_predict=4", "Translate", "this:", input="bonjour\n")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["prompt"] == "<bos>Q: bonjour Translate this:\nA:"


def test_json_has_timings_and_num_predict_applies(run_cli) -> None:
    r = run_cli("run", MODEL, "--json", "--param", "num_predict=8", "--param", "temperature=0",
                "Write a long story about a dragon.")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    t = data["timings"]
    assert data["backend"] == "llama-server" and data["prompt_mode"] == "completion"
    assert 0 < t["completion_tokens"] <= 8 and t["prompt_tokens"] > 5
    assert t["total_seconds"] > 0 and t["load_seconds"] > 0 and t["tokens_per_second"] > 0
    assert data["eval_count"] == t["completion_tokens"] and data["total_duration"] > 0
    assert data["response"].strip()


def test_same_seed_same_text(gemma_model, runtime_settings, gemma_engine) -> None:
    # through the session API on one engine: sampled (temperature 0.9) with a seed, and greedy
    s = Session(runtime_settings, MODEL)
    s.model, s.backend, s.engine = gemma_model, "llama-server", gemma_engine
    s._options = s._engine_options()
    ask = [{"role": "user", "content": "Name three animals."}]
    for params in ({"seed": 42, "temperature": 0.9, "num_predict": 16}, {"temperature": 0, "num_predict": 16}):
        first, second = s.chat(ask, params).read(), s.chat(ask, params).read()
        assert first and first == second, params
    other = {s.chat(ask, {"seed": n, "temperature": 1.5, "num_predict": 16}).read() for n in (1, 2)}
    assert len(other) == 2  # and the seed really drives sampling


def test_same_seed_same_text_through_the_cli(run_cli) -> None:
    args = ("run", MODEL, "--param", "seed=7", "--param", "temperature=0.8", "--param", "num_predict=12",
            "Tell me about cats.")
    a, b = run_cli(*args), run_cli(*args)
    assert a.code == b.code == 0 and a.stdout.strip() and a.stdout == b.stdout


def test_base_model_never_answers_empty(run_cli) -> None:
    # Greedy, the base model's first tokens for this prompt are a blank line, which ends a Q/A transcript
    # answer at once; the run retries with end-of-text ignored and still answers.
    r = run_cli("run", MODEL, "--json", "--param", "temperature=0", "...")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["response"].strip() and data["retried"] is True


def test_modelfile_template_system_and_parameters_reach_the_engine(run_cli, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(
        f"FROM {MODEL}\n"
        'TEMPLATE """{{ if .System }}<<{{ .System }}>>\n{{ end }}User: {{ .Prompt }}\nBot: {{ .Response }}"""\n'
        "SYSTEM You answer in French.\n"
        "PARAMETER num_predict 6\n"
        "PARAMETER temperature 0\n"
    )
    r = run_cli("create", "tmpl-test", "-f", str(tmp_path / "Modelfile"), "-q")
    assert r.code == 0, r.stderr
    r = run_cli("run", "tmpl-test", "--json", "Good morning")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["prompt_mode"] == "template"
    assert data["prompt"] == "<bos><<You answer in French.>>\nUser: Good morning\nBot: "
    assert 0 < data["timings"]["completion_tokens"] <= 6 and data["response"].strip()
    # --system replaces SYSTEM; --param overrides PARAMETER
    r = run_cli("run", "tmpl-test", "--json", "--system", "Be brief.", "--param", "num_predict=3", "Good morning")
    data = json.loads(r.stdout)
    assert data["prompt"].startswith("<bos><<Be brief.>>\n") and data["timings"]["completion_tokens"] <= 3


def test_modelfile_messages_and_system_in_completion_mode(run_cli, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(
        f"FROM {MODEL}\nSYSTEM A quiz.\nMESSAGE user What is 2+2?\nMESSAGE assistant 4\nPARAMETER num_predict 4\n")
    assert run_cli("create", "msg-test", "-f", str(tmp_path / "Modelfile"), "-q").code == 0
    r = run_cli("run", "msg-test", "--json", "What is 3+3?")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["prompt"] == (
        "<bos>A quiz.\n\nQ: What is 2+2?\nA: 4\n\nQ: What is 3+3?\nA:")


def test_missing_engine_is_one_clear_line(run_cli) -> None:
    r = run_cli("run", MODEL, "hi", env={"LLMCTL_LLAMA_SERVER": "/nonexistent"})
    assert r.code == EngineError.exit_code == 8
    assert r.stderr.startswith("llmctl: error: LLMCTL_LLAMA_SERVER=/nonexistent: does not exist")
    assert r.stderr.count("\n") == 1 and r.stdout == ""


@pytest.mark.parametrize("args,stdin,message", [
    ((MODEL,), "", "no prompt"),
    ((MODEL, "--param", "temperature=warm", "hi"), "", "invalid value for parameter temperature"),
    ((MODEL, "--param", "nosuch=1", "hi"), "", "unknown parameter 'nosuch'"),
    ((MODEL, "--param", "temperature", "hi"), "", "expected NAME=VALUE"),
])
def test_usage_errors(run_cli, args, stdin, message) -> None:
    r = run_cli("run", *args, input=stdin)
    assert r.code == UsageError.exit_code and message in r.stderr and r.stderr.count("\n") == 1


def test_unknown_model_is_pulled_like_ollama_run_and_fails_clearly(run_cli) -> None:
    r = run_cli("run", "localhost:1/nosuch/model:v1", "hi")
    assert r.code == 6  # RegistryError: run tried to pull it, as `ollama run` does
    assert r.stderr.startswith("llmctl: error: model 'localhost:1/nosuch/model:v1' not found locally")
    assert r.stderr.count("\n") == 1 and r.stdout == ""


def test_run_uses_a_running_gateway(gateway_factory) -> None:
    gw = gateway_factory()
    host = gw.url.removeprefix("http://")
    r = gw.cli("run", MODEL, "--json", "--param", "num_predict=8", "hi", env={"LLMCTL_HOST": host})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["backend"] == "gateway" and data["response"].strip()
    assert 0 < data["eval_count"] <= 8
    assert any(m["name"].startswith(MODEL) for m in gw.ps())  # the gateway loaded it, not a child of run


def test_llama_cpp_python_backend(run_cli) -> None:
    r = run_cli("run", MODEL, "--backend", "llama-cpp-python", "--json", "--param", "num_predict=12",
                "--param", "temperature=0", "What is the capital of France?")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["backend"] == "llama-cpp-python" and data["response"].strip()
    assert 0 < data["timings"]["completion_tokens"] <= 12


# -- the interactive chat --------------------------------------------------------------------------------------
def test_interactive_chat_through_a_pty(runtime_home: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    from fixtures_runtime import _env

    child = pexpect.spawn(sys.executable, ["-m", "llmctl", "run", MODEL, "--param", "num_predict=12"],
                          env=_env(runtime_home, {"TERM": "dumb", "COLUMNS": "200"}), encoding="utf-8",
                          timeout=120, dimensions=(40, 200))
    try:
        child.expect_exact(">>> ")
        child.sendline("/set system You are a pirate.")
        child.expect_exact("Set system message.")
        child.expect_exact(">>> ")
        child.sendline("/show system")
        child.expect_exact("You are a pirate.")
        child.expect_exact(">>> ")
        child.sendline("/set parameter temperature 0")
        child.expect_exact("Set parameter 'temperature' to '0'")
        child.expect_exact(">>> ")
        child.sendline("/show parameters")
        child.expect(r"temperature\s+0")
        child.expect_exact(">>> ")
        # a multi-line message
        child.sendline('"""Name a color')
        child.expect_exact("... ")
        child.sendline('of the sea."""')
        child.expect_exact(">>> ")
        answer = child.before
        assert answer.strip(), "no answer printed"
        child.sendline("/show info")
        child.expect(r"prompt mode\s+completion")
        child.expect_exact(">>> ")
        child.sendline("/clear")
        child.expect_exact("Cleared session context")
        child.expect_exact(">>> ")
        child.sendline("/nonsense")
        child.expect_exact("Unknown command '/nonsense'")
        child.expect_exact(">>> ")
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    history = (runtime_home / "history").read_text()
    assert "/set system You are a pirate." in history


def test_chat_history_and_system_reach_the_engine(gemma_model, runtime_settings, gemma_engine) -> None:
    # the REPL's conversation: earlier turns and /set system are part of what the engine evaluates
    from llmctl.cli.chat import Repl

    s = Session(runtime_settings, MODEL, params={"num_predict": 4, "temperature": 0})
    s.model, s.backend, s.engine = gemma_model, "llama-server", gemma_engine
    s._options = s._engine_options()
    lines = iter(["/set system Answer in one word.", "What is 2+2?", '"""What is', '3+3?"""', "/bye"])
    out = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    repl = Repl(s, out=Sink(), err=Sink(), read=lambda prompt: next(lines))
    repl.run()
    assert [m["role"] for m in repl.messages] == ["user", "assistant", "user", "assistant"]
    assert repl.messages[2]["content"] == "What is\n3+3?"
    prompt = s.last_request.prompt
    assert prompt.startswith("Answer in one word.\n\nQ: What is 2+2?\nA: ")
    assert prompt.endswith("Q: What is\n3+3?\nA:")

