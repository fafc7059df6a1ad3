"""The CLI around the gateway: serve, ps, load, unload/stop, status, logs, and their one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from fixtures_gateway import MODEL, MODEL_B, MODEL_B_FULL, gateway_env, make_home

pytestmark = pytest.mark.slow


def test_ps_load_unload_stop_status_logs(gateway_factory) -> None:
    gw = gateway_factory("--ctx-size", "1024", "--keep-alive", "10m")
    r = gw.cli("ps")
    assert r.returncode == 0 and r.stdout.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "UNTIL", "PORT"]

    r = gw.cli("load", MODEL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"loaded {MODEL} in ")
    r = gw.cli("load", MODEL_B, "--keep-alive", "-1")
    assert r.returncode == 0, r.stderr

    r = gw.cli("ps")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "UNTIL", "PORT"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {MODEL, MODEL_B_FULL}
    assert "100% CPU" in rows[MODEL] and "minutes from now" in rows[MODEL]
    assert "Forever" in rows[MODEL_B_FULL]

    r = gw.cli("ps", "--json")
    data = {m["name"]: m for m in json.loads(r.stdout)}
    assert data[MODEL]["processor"] == "100% CPU" and data[MODEL]["port"] > 0 and data[MODEL]["size"] > 1e8
    assert data[MODEL_B_FULL]["until"] is None and len(data[MODEL]["id"]) == 12

    r = gw.cli("status")
    assert r.returncode == 0
    assert f"running at {gw.url}" in r.stdout and "loaded:   2" in r.stdout and "pid:" in r.stdout
    status = json.loads(gw.cli("status", "--json").stdout)
    assert status["pid"] == gw.proc.pid and status["engine_kind"] == "cpu" and len(status["loaded"]) == 2

    r = gw.cli("logs", "-n", "200")
    assert r.returncode == 0 and "gateway on" in r.stdout and f"loaded {MODEL}" in r.stdout
    r = gw.cli("logs", MODEL, "-n", "5000")
    assert r.returncode == 0 and "llama-server" in r.stdout and "listening" in r.stdout
    r = gw.cli("logs", "--list")
    assert "serve.log" in r.stdout and "engine-" in r.stdout

    r = gw.cli("unload", MODEL)
    assert r.returncode == 0 and r.stdout.strip() == f"unloaded {MODEL}"
    r = gw.cli("stop", MODEL_B)
    assert r.returncode == 0
    assert gw.ps() == []
    r = gw.cli("stop", MODEL)
    assert r.returncode == 3 and r.stderr.strip() == f"llmctl: error: model {MODEL!r} is not loaded (`llmctl ps` lists loaded models)"
    r = gw.cli("load", "ghost")
    assert r.returncode == 3 and r.stderr.startswith("llmctl: error: model 'ghost") and len(r.stderr.splitlines()) == 1


def test_follow_logs(gateway_factory) -> None:
    gw = gateway_factory("--ctx-size", "1024")
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", "logs", "-f", "-n", "0"], env=gw.env,
                            stdout=subprocess.PIPE, text=True)
    try:
        _wait_until_open(proc.pid, "serve.log")  # then it reads from the end of the file
        assert gw.cli("load", MODEL).returncode == 0
        deadline = time.monotonic() + 20
        seen = ""
        while "loaded gemma3:270m" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "loaded gemma3:270m" in seen
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_until_open(pid: int, name: str, timeout: float = 60) -> None:
    """Poll until process `pid` holds a file called `name` open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd).endswith("/" + name):
                    return
            except OSError:
                pass
        time.sleep(0.02)
    pytest.fail(f"process {pid} never opened {name}")


def test_no_gateway_is_one_clear_error(tmp_path) -> None:
    env = {**gateway_env(tmp_path / "home"), "LLMCTL_HOST": "127.0.0.1:9"}
    for args in (["ps"], ["status"], ["load", MODEL]):
        r = subprocess.run([sys.executable, "-m", "llmctl", *args], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 8
        assert r.stderr == ("llmctl: error: no gateway is running at http://127.0.0.1:9 "
                            "(start one with `llmctl serve`)\n")


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_a_usage_error(tmp_path, port: str) -> None:
    """Not `unexpected OverflowError: bind(): port must be 0-65535` and exit 1."""
    r = subprocess.run([sys.executable, "-m", "llmctl", "serve", "--port", port], env=gateway_env(tmp_path / "home"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("key", ["", "  "])
def test_an_empty_api_key_is_a_usage_error(tmp_path, key: str) -> None:
    """`serve --api-key "$KEY"` with KEY unset must not start a gateway that takes any request."""
    r = subprocess.run([sys.executable, "-m", "llmctl", "serve", "--port", "0", "--api-key", key],
                       env=gateway_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr == "llmctl: error: --api-key is empty: give the key, or leave the option " \
                                             "out to serve without one\n", r.stderr


def test_busy_port_and_missing_runtime_are_one_line(gateway_factory, gateway_store, tmp_path) -> None:
    gw = gateway_factory()
    home = make_home(tmp_path / "second", gateway_store)
    r = subprocess.run([sys.executable, "-m", "llmctl", "serve", "--port", str(gw.port)], env=gateway_env(home),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 10
    assert r.stderr.startswith(f"llmctl: error: port {gw.port} on 127.0.0.1 is already in use")
    assert len(r.stderr.splitlines()) == 1

    env = {**gateway_env(home), "LLMCTL_LLAMA_SERVER": str(tmp_path / "no-such-llama-server")}
    r = subprocess.run([sys.executable, "-m", "llmctl", "serve", "--port", "0"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 8
    assert r.stderr.startswith("llmctl: error: LLMCTL_LLAMA_SERVER=") and "does not exist" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_api_key(gateway_factory) -> None:
    gw = gateway_factory("--ctx-size", "1024", api_key="s3cret")
    r = httpx.get(gw.url + "/v1/models", trust_env=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(gw.url + "/api/tags", trust_env=False)
    assert r.status_code == 401 and "API key" in r.json()["error"]
    assert httpx.get(gw.url + "/health", trust_env=False).status_code == 200
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="s3cret", max_retries=0)
    out = client.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
    assert out.usage is not None and out.usage.completion_tokens <= 2
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert gw.cli("ps").returncode == 7
    assert gw.cli("ps", env={"LLMCTL_API_KEY": "s3cret"}).returncode == 0
