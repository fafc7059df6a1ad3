"""Gateway fixtures: real `llmctl serve` subprocesses on free ports, with real llama-server engines.

One store per test session holds the bundled Gemma 3 270M (`gemma3:270m`) and a second model built from it
by a Modelfile (`tiny-b`: same weights, another manifest digest, so it gets its own engine). Each gateway
gets a fresh LLMCTL_HOME whose `store` links to that shared store, so gateways never see each other's
`run/gateway.json` or logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

MODEL = "gemma3:270m"
MODEL_B = "tiny-b"
MODEL_B_FULL = "tiny-b:latest"  # as lists and `ps` show it


@pytest.fixture(scope="session")
def gateway_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with gemma3:270m and tiny-b (built through the real create API)."""
    from llmctl.api.create import create
    from llmctl.api.models import get_model
    from llmctl.modelfile import parse
    from llmctl.settings import Settings

    home = tmp_path_factory.mktemp("gateway-store-home")
    settings = Settings.from_env({"LLMCTL_HOME": str(home)})
    get_model(settings, MODEL)  # installs the bundled default offline
    create(settings, MODEL_B, parse(f"FROM {MODEL}\nSYSTEM You are model B.\nPARAMETER temperature 0.3\n".encode()),
           base_dir=home)
    return settings.store_dir


@dataclass
class RunningGateway:
    home: Path
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    stderr_path: Path
    api_key: str | None = None
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.Client(base_url=self.url, timeout=120, headers=headers, trust_env=False)
        return self._http

    def ps(self) -> list[dict[str, Any]]:
        return self.http.get("/api/ps").json()["models"]

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real `llmctl` CLI against this gateway's home."""
        return subprocess.run([sys.executable, "-m", "llmctl", *args], capture_output=True, text=True,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def settled_metrics(gw: "RunningGateway", name: str, at_least: float, timeout: float = 30, **labels: str) -> str:
    """The gateway's /metrics once `name{labels}` reaches `at_least`. A stream's bookkeeping runs just after its
    last byte went out, so a client that read the whole stream can ask for /metrics before it is counted."""
    deadline = time.monotonic() + timeout
    while True:
        text = gw.metrics()
        if metric_value(text, name, **labels) >= at_least or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def engine_headers(pid: int) -> dict[str, str]:
    """The key of the engine with this pid, for a test that must look at the engine itself (its /slots).

    Only the gateway is told the key; a process of the same user can still read it from the engine's
    environment (/proc/PID/environ is readable by its owner only), which is what this does.
    """
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    key = next(v.split(b"=", 1)[1] for v in env if v.startswith(b"LLAMA_API_KEY="))
    return {"Authorization": f"Bearer {key.decode()}"}


def gateway_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_")}
    env["LLMCTL_HOME"] = str(home)
    return env


def make_home(root: Path, store: Path) -> Path:
    home = root / "home"
    home.mkdir(parents=True)
    (home / "store").symlink_to(store, target_is_directory=True)
    return home


def private_home(root: Path, store: Path) -> Path:
    """A home with a store of its own (deletes there never touch the session's): gemma3:270m, its weights
    hard-linked from `store` (no copy), and `tiny:v1`, a tiny real GGUF."""
    from fixtures_registry import make_gguf
    from llmctl.api.models import get_model, open_store
    from llmctl.api.package import PackageSpec, package
    from llmctl.settings import Settings

    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    settings = Settings.from_env({"LLMCTL_HOME": str(home)})
    own = open_store(settings)
    for blob in (store / "blobs" / "sha256").iterdir():
        if blob.stat().st_size > 1 << 20:  # the GGUF: bundled.install finds it in place
            os.link(blob, own.blobs_dir / blob.name)
    get_model(settings, MODEL)
    package(settings, "tiny:v1", PackageSpec(gguf=make_gguf(root / "tiny.gguf")))
    return home


def start_gateway(home: Path, *args: str, api_key: str | None = None, env: dict[str, str] | None = None,
                  timeout: float = 60) -> RunningGateway:
    """`llmctl serve --port 0 ARGS` in `home`; returns once its state file names it and /health answers."""
    full_env = {**gateway_env(home), **(env or {})}
    stderr_path = home / "serve.stderr"
    cmd = [sys.executable, "-m", "llmctl", "serve", "--host", "127.0.0.1", "--port", "0", *args]
    if api_key:
        cmd += ["--api-key", api_key]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    state_file = home / "run" / "gateway.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llmctl serve exited with {proc.returncode}: {stderr_path.read_text()[-2000:]}")
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        if state.get("pid") == proc.pid:
            try:
                if httpx.get(state["url"] + "/health", timeout=2, trust_env=False).status_code == 200:
                    return RunningGateway(home, state["url"], state["port"], proc, full_env, stderr_path, api_key)
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"llmctl serve did not come up in {timeout}s: {stderr_path.read_text()[-2000:]}")


@pytest.fixture()
def gateway_factory(gateway_store: Path, tmp_path: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways for one test (`factory(*serve_args, api_key=None)`); all are stopped afterwards."""
    started: list[RunningGateway] = []

    def factory(*args: str, api_key: str | None = None, env: dict[str, str] | None = None) -> RunningGateway:
        home = make_home(tmp_path / f"gw{len(started)}", gateway_store)
        gw = start_gateway(home, *args, api_key=api_key, env=env)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def gateway(gateway_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway shared by a test module: 4 slots, default keep-alive, gemma3:270m loaded."""
    home = make_home(tmp_path_factory.mktemp("gateway"), gateway_store)
    gw = start_gateway(home, "--parallel", "4", "--ctx-size", "4096")
    try:
        r = gw.http.post("/api/generate", json={"model": MODEL})
        assert r.status_code == 200, r.text
        yield gw
    finally:
        code = gw.stop()
        assert code == 0, f"llmctl serve exited with {code}: {gw.stderr()[-2000:]}"
