"""Runtime fixtures: the real llama-server, the real Gemma 3 270M model, real processes.

- `engine`: the llama-server that discovery finds on this machine (session-scoped);
- `runtime_home` / `runtime_settings`: one LLMCTL_HOME per session with the bundled Gemma installed, so the
  run tests do not copy 253 MB into a fresh home each time;
- `gemma_model`: that stored Model; `gemma_engine`: an EngineProcess started on it (2 slots), stopped at the end;
- `run_cli`: the real `llmctl` entry point in a subprocess on `runtime_home`, with LLMCTL_HOST pointing where
  no gateway listens (so a concurrently running `llmctl serve` is never picked up by accident);
- `make_lora`: writes a GGUF LoRA adapter for the Gemma shapes with the `gguf` package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from llmctl.settings import Settings

NO_GATEWAY_HOST = "127.0.0.1:9"  # the discard port: nothing answers HTTP there


@dataclass
class RunResult:
    code: int
    stdout: str
    stderr: str


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMCTL_LLAMA_SERVER", "LLMCTL_REGISTRY", "LLMCTL_DEBUG")}
    env.update({"LLMCTL_HOME": str(home), "LLMCTL_HOST": NO_GATEWAY_HOST})
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def runtime_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("runtime") / "home"
    from llmctl.api.models import get_model

    get_model(Settings.from_env(_env(home)), "gemma3:270m")  # installs the bundled model once
    return home


@pytest.fixture(scope="session")
def runtime_settings(runtime_home: Path) -> Settings:
    return Settings.from_env(_env(runtime_home))


@pytest.fixture(scope="session")
def engine(runtime_settings: Settings):
    from llmctl.runtime.engine import find_engine

    return find_engine(runtime_settings)


@pytest.fixture(scope="session")
def gemma_model(runtime_settings: Settings):
    from llmctl.api.models import get_model

    return get_model(runtime_settings, "gemma3:270m")


@pytest.fixture(scope="session")
def gemma_engine(runtime_settings: Settings, gemma_model, engine) -> Iterator:
    from llmctl.runtime.process import EngineOptions, EngineProcess

    ep = EngineProcess.start(runtime_settings, gemma_model, EngineOptions(parallel=2, ctx_size=2048), engine=engine)
    try:
        yield ep
    finally:
        ep.stop()


@pytest.fixture()
def run_cli(runtime_home: Path) -> Callable[..., RunResult]:
    """`llmctl ARGS` as a user's shell runs it, on the session's runtime home."""

    def run(*args: str, input: str | None = "", env: dict[str, str] | None = None, timeout: float = 180,
            cwd: Path | None = None) -> RunResult:
        proc = subprocess.run([sys.executable, "-m", "llmctl", *args], input=input, capture_output=True, text=True,
                              env=_env(runtime_home, env), timeout=timeout, cwd=cwd)
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    return run


def build_lora(path: Path, model_gguf: Path, *, rank: int = 4, amplitude: float = 0.25, seed: int = 0,
               target: str = "ffn_up") -> Path:
    """A LoRA adapter GGUF (general.type=adapter) for `model_gguf`'s shapes, random A and B on `target`.

    ffn_up by default: the same perturbation on ffn_down drives Gemma's activations into a range where the
    CPU kernels crawl (7 tok/s instead of 65, measured), which would only slow the tests down.

    llama.cpp's layout: for a weight of ggml shape [n_in, n_out], lora_a is [n_in, r] and lora_b is [r, n_out]
    (numpy shapes (r, n_in) and (n_out, r)); alpha = rank makes the applied scale exactly the user's scale.
    """
    import gguf
    import numpy as np

    from llmctl.artifact.gguf_meta import read_gguf

    kv = read_gguf(model_gguf).kv
    arch = kv["general.architecture"]
    n_embd, n_ff, n_layer = (int(kv[f"{arch}.{k}"]) for k in ("embedding_length", "feed_forward_length", "block_count"))
    n_in, n_out = {"ffn_down": (n_ff, n_embd), "ffn_up": (n_embd, n_ff), "ffn_gate": (n_embd, n_ff)}[target]
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for i in range(n_layer):
        a = (rng.standard_normal((rank, n_in)) * amplitude).astype(np.float32)
        b = (rng.standard_normal((n_out, rank)) * amplitude).astype(np.float32)
        writer.add_tensor(f"blk.{i}.{target}.weight.lora_a", a)
        writer.add_tensor(f"blk.{i}.{target}.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def make_lora(tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path) -> Callable[..., Path]:
    root = tmp_path_factory.mktemp("lora")

    def make(name: str = "adapter.gguf", **kw: object) -> Path:
        path = root / name
        if not path.exists():
            build_lora(path, gemma_gguf, **kw)  # type: ignore[arg-type]
        return path

    return make
