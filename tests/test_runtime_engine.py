"""Engine discovery, CPU/GPU detection, the llama-server process (start, health, ports, crashes), and
`llmctl runtime install|list`. Real binaries and real processes throughout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from llmctl.errors import Conflict, EngineError, NotFound
from llmctl.runtime import cpu, gpu
from llmctl.runtime.engine import NO_ENGINE, find_engine, list_engines
from llmctl.runtime.process import EngineOptions, EngineProcess
from llmctl.runtime.prompt import build_completion
from llmctl.settings import Settings


def _settings(home: Path, **env: str) -> Settings:
    return Settings.from_env({"LLMCTL_HOME": str(home), **env})


# -- discovery ------------------------------------------------------------------------------------------------
def test_default_engine_is_the_wheels_llama_server(engine) -> None:
    assert engine.source == "llama-cpp-python"
    assert engine.path.name == "llama-server" and os.access(engine.path, os.X_OK)
    assert engine.kind == "cpu"  # no GPU on this machine
    lib = Path(engine.env["LD_LIBRARY_PATH"].split(os.pathsep)[0])
    assert (lib / "libllama.so").exists() or any(lib.glob("libllama*"))


def test_override_points_at_a_binary(tmp_path: Path, engine) -> None:
    found = find_engine(_settings(tmp_path, LLMCTL_LLAMA_SERVER=str(engine.path)))
    assert found.source == "LLMCTL_LLAMA_SERVER" and found.path == engine.path
    assert found.version.startswith("b")  # probed from `llama-server --version`, e.g. b1-0c1e570


def test_override_that_does_not_exist_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="LLMCTL_LLAMA_SERVER=/nonexistent: does not exist"):
        find_engine(_settings(tmp_path, LLMCTL_LLAMA_SERVER="/nonexistent"))


def test_runtime_builds_come_before_the_wheel_and_cuda_needs_a_gpu(tmp_path: Path, engine) -> None:
    settings = _settings(tmp_path)
    for name, kind in (("0.3.36-cpu", "cpu"), ("0.3.36-cuda", "cuda")):
        d = settings.runtimes_dir / name / "bin"
        d.mkdir(parents=True)
        shutil.copy(engine.path, d / "llama-server")
        (d.parent / "build.json").write_text(json.dumps({"version": "0.3.36", "kind": kind}))
    chosen = find_engine(settings)
    assert chosen.source == "runtime" and chosen.kind == ("cuda" if gpu.query_gpus() else "cpu")
    sources = [e.source for e in list_engines(settings)]
    assert sources[:2] == ["runtime", "runtime"] and "llama-cpp-python" in sources


def test_no_engine_anywhere_says_to_install(tmp_path: Path) -> None:
    # a Python without llama-cpp-python and a PATH without llama-server: the discovery's last word
    import subprocess
    import sys

    code = ("import importlib.util as u, sys; u.find_spec = lambda *a, **k: None\n"
            "from llmctl.settings import Settings\nfrom llmctl.runtime.engine import find_engine\n"
            "from llmctl.errors import EngineError\n"
            f"try:\n    find_engine(Settings.from_env({{'LLMCTL_HOME': {str(tmp_path)!r}}}))\n"
            "except EngineError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.stdout.strip() == NO_ENGINE


def test_machine_detection_matches_the_system() -> None:
    info = cpu.cpu_info()
    assert info.logical_cores >= 1 and info.flags
    assert ("avx2" in info.flags) == ("avx2" in info.simd)
    assert (cpu.nvcc(None) is not None) == bool(shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").exists())
    # one GPU probe (runtime.gpu's nvidia-smi query): what `runtime list` reports is what engines are chosen by
    assert cpu.describe(None)["gpus"] == [g.name for g in gpu.query_gpus()]
    assert (gpu.query_gpus() == []) == (gpu.no_gpu_reason() is not None)
    message = cpu.sigill_message()
    assert "SIGILL" in message and "llmctl runtime install" in message


def test_runtime_list_cli(run_cli) -> None:
    r = run_cli("runtime", "list", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["selected"]["source"] == "llama-cpp-python"
    assert [e["selected"] for e in data["engines"]].count(True) == 1
    assert data["machine"]["cores"] >= 1 and "amx_advertised" in data["machine"]
    r = run_cli("runtime", "list")
    assert r.code == 0 and "llama-cpp-python" in r.stdout and "machine:" in r.stdout


def test_cuda_home_is_a_setting_that_reaches_the_nvcc_lookup(run_cli, tmp_path: Path) -> None:
    """CUDA_HOME is read by Settings and passed down: `runtime list` finds the toolkit's nvcc through it (nvcc on
    PATH comes first, so PATH here leaves out the folders that hold one; /usr/local/cuda comes after)."""
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nvcc").exists())
    toolkit = tmp_path / "cuda-12.4"
    (toolkit / "bin").mkdir(parents=True)
    compiler = toolkit / "bin" / "nvcc"
    compiler.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.131'\n")
    compiler.chmod(0o755)
    assert Settings.from_env({"CUDA_HOME": str(toolkit)}).cuda_home == toolkit
    assert Settings.from_env({}).cuda_home is None
    r = run_cli("runtime", "list", "--json", env={"CUDA_HOME": str(toolkit), "PATH": path})
    assert r.code == 0, r.stderr
    assert (json.loads(r.stdout)["machine"]["nvcc"], json.loads(r.stdout)["machine"]["cuda"]) == (str(compiler), "12.4")
    without = json.loads(run_cli("runtime", "list", "--json", env={"PATH": path}).stdout)["machine"]["nvcc"]
    assert without == ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if without is None and shutil.which("cmake", path=path) and shutil.which("c++", path=path):
        r = run_cli("runtime", "install", "--cuda", "--source", str(tmp_path / "missing.tar.gz"), env={"PATH": path})
        assert r.code == 2 and "set CUDA_HOME" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_runtime_install_source_errors_are_clear(run_cli, tmp_path: Path) -> None:
    r = run_cli("runtime", "install", "--source", str(tmp_path / "missing.tar.gz"))
    assert r.code == NotFound.exit_code and "no such file or folder" in r.stderr
    r = run_cli("runtime", "install", "--source", str(tmp_path))
    assert r.code == NotFound.exit_code and "neither a llama.cpp tree" in r.stderr
    assert r.stderr.count("\n") == 1  # one line


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LLMCTL_TEST_BUILD"), reason="a full llama-server build takes 5-10 min; "
                    "set LLMCTL_TEST_BUILD=1")
def test_runtime_install_builds_a_working_server(run_cli, runtime_home: Path) -> None:
    r = run_cli("runtime", "install", "--json", timeout=1800)
    assert r.code == 0, r.stderr
    info = json.loads(r.stdout)
    assert Path(info["path"]).exists() and info["kind"] == "cpu"
    r = run_cli("runtime", "list", "--json")
    assert json.loads(r.stdout)["selected"]["source"] == "runtime"
    r = run_cli("run", "gemma3:270m", "--param", "num_predict=8", "--json", "hi")
    assert r.code == 0 and json.loads(r.stdout)["response"]


# -- the process ------------------------------------------------------------------------------------------------
def test_engine_starts_healthy_with_the_model_and_options(gemma_engine, gemma_model) -> None:
    assert gemma_engine.alive() and gemma_engine.prompt_mode == "completion"
    assert httpx.get(gemma_engine.base_url + "/health").status_code == 200
    props = httpx.get(gemma_engine.base_url + "/props", headers=gemma_engine.auth_headers).json()
    assert props["total_slots"] == 2
    slots = httpx.get(gemma_engine.base_url + "/slots", headers=gemma_engine.auth_headers).json()
    assert {s["n_ctx"] for s in slots} == {2048}  # ctx_size is per slot: -c 4096 for 2 slots
    assert str(gemma_model.weights[0]) in gemma_engine.command
    assert gemma_engine.log_path.exists() and gemma_engine.log_path.read_text().startswith("$ ")


def test_engine_answers_only_with_its_key_which_is_in_no_log_or_command_line(gemma_engine) -> None:
    """Other local users and browser pages reach the engine's loopback port too: without the random key only
    the process that started it knows, nothing but the readiness probe answers."""
    url, key = gemma_engine.base_url, gemma_engine.api_key
    assert len(key) >= 32
    assert httpx.get(url + "/health", trust_env=False).status_code == 200  # the scheduler's probe needs no key
    for method, path in (("GET", "/props"), ("GET", "/metrics"), ("GET", "/slots"), ("POST", "/completion")):
        r = httpx.request(method, url + path, json={"prompt": "hi", "n_predict": 1} if method == "POST" else None,
                          trust_env=False)
        assert r.status_code == 401, (path, r.status_code)
        ok = httpx.request(method, url + path, headers=gemma_engine.auth_headers, trust_env=False,
                           json={"prompt": "hi", "n_predict": 1} if method == "POST" else None)
        assert ok.status_code == 200, (path, ok.status_code, ok.text[:200])
    assert key not in " ".join(gemma_engine.command)
    assert key not in gemma_engine.log_path.read_text(errors="replace")
    assert key.encode() not in Path(f"/proc/{gemma_engine.pid}/cmdline").read_bytes()


def test_engine_streams_and_reports_what_it_evaluated(gemma_engine, gemma_model) -> None:
    req = build_completion(gemma_model, [{"role": "user", "content": "What is the capital of France?"}],
                           {"temperature": 0, "num_predict": 8})
    deltas = list(gemma_engine.complete(req))
    text = "".join(d.text for d in deltas)
    final = deltas[-1]
    assert text.strip() and final.done and final.completion_tokens <= 8
    assert final.prompt == "<bos>Q: What is the capital of France?\nA:"


def test_busy_port_is_a_conflict(runtime_settings, gemma_model, engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(Conflict, match=f"port {port} on 127.0.0.1 is already in use"):
            EngineProcess.start(runtime_settings, gemma_model, EngineOptions(parallel=1), port=port, engine=engine)


def test_bad_model_file_fails_with_the_log_tail(runtime_settings, gemma_model, engine, tmp_path: Path) -> None:
    from dataclasses import replace

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(EngineError) as info:
        EngineProcess.start(runtime_settings, replace(gemma_model, weights=(bad,)), EngineOptions(parallel=1),
                            engine=engine, timeout=60)
    text = str(info.value)
    assert "exited with status" in text and "--- last lines of" in text


def _start(runtime_settings, gemma_model, engine) -> EngineProcess:
    return EngineProcess.start(runtime_settings, gemma_model, EngineOptions(parallel=1, ctx_size=1024), engine=engine)


def test_killed_engine_gives_a_clear_error(runtime_settings, gemma_model, engine) -> None:
    ep = _start(runtime_settings, gemma_model, engine)
    try:
        os.kill(ep.pid, signal.SIGKILL)
        req = build_completion(gemma_model, [{"role": "user", "content": "hi"}], {"num_predict": 4})
        with pytest.raises(EngineError) as info:
            list(ep.complete(req))
        text = str(info.value)
        assert f"llama-server (pid {ep.pid}) was killed by SIGKILL" in text
        assert "--- last lines of" in text and str(ep.log_path) in text
    finally:
        ep.stop()


def test_engine_dying_mid_answer_of_sigill_names_the_amx_fix(runtime_settings, gemma_model, engine) -> None:
    ep = _start(runtime_settings, gemma_model, engine)
    try:
        req = build_completion(gemma_model, [{"role": "user", "content": "Tell me a long story."}],
                               {"num_predict": 400, "temperature": 0})
        stream = ep.complete(req)
        next(stream)  # the answer has started
        os.kill(ep.pid, signal.SIGILL)  # what an AMX instruction on a trapping CPU does
        with pytest.raises(EngineError) as info:
            for _ in stream:
                pass
        text = str(info.value)
        assert "SIGILL" in text and "llmctl runtime install" in text
    finally:
        ep.stop()


def test_sigill_at_start_through_the_cli(run_cli, tmp_path: Path) -> None:
    # An engine binary that dies of SIGILL as soon as it runs, as an AMX build does on a trapping CPU.
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\nkill -ILL $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    t0 = time.monotonic()
    r = run_cli("run", "gemma3:270m", "hi", env={"LLMCTL_LLAMA_SERVER": str(fake)})
    assert r.code == EngineError.exit_code
    assert r.stderr.startswith("llmctl: error: llama-server died of SIGILL")
    assert "llmctl runtime install" in r.stderr and time.monotonic() - t0 < 60


def test_stop_is_idempotent_and_frees_the_port(runtime_settings, gemma_model, engine) -> None:
    ep = _start(runtime_settings, gemma_model, engine)
    ep.stop()
    ep.stop()
    assert not ep.alive() and ep.exit_error() is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", ep.port))  # nothing holds it any more
