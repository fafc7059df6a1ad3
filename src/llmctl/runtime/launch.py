"""What to launch for one model: the engine options, the GPU placement and the llama-server command line.

Pure decisions, kept apart from `process` (which runs, watches and talks to the child) so they can be
checked without starting anything: tests build the command for a CUDA engine on a machine without a GPU.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.runtime.engine import Engine
from llmctl.runtime.params import load_params
from llmctl.runtime.prompt import JINJA
from llmctl.settings import Settings

DEFAULT_CTX = 4096


@dataclass(frozen=True)
class EngineOptions:
    """How to start llama-server for one model.

    ctx_size is the context of each request: llama-server gets `-c ctx_size * parallel` so each of its
    `parallel` slots holds a full context, as Ollama sizes OLLAMA_NUM_PARALLEL x num_ctx. Default: the model's
    num_ctx PARAMETER, else min(model context, 4096). The model's ADAPTER layers are always applied (scale
    1.0) unless `lora` lists the same file with another scale.
    """

    ctx_size: int | None = None
    parallel: int = 4
    threads: int | None = None
    gpu_layers: int | None = None  # -ngl; None: planned from free VRAM on a CUDA engine (llmctl.runtime.gpu)
    lora: tuple[tuple[Path, float], ...] = ()
    extra_args: tuple[str, ...] = ()
    gpus: str | None = None  # "all" (None), "0,2", "none": CUDA_VISIBLE_DEVICES for the engine
    split_mode: str | None = None  # several GPUs: "layer" (llama.cpp's default), "row", "none"
    tensor_split: tuple[float, ...] | None = None  # several GPUs: proportions, e.g. (3, 1)

    @classmethod
    def for_model(cls, model: Any, params: dict[str, Any] | None = None, **overrides: Any) -> "EngineOptions":
        """Options from the model's PARAMETERs and `params` (num_ctx, num_thread, num_gpu, num_batch)."""
        merged = {**(getattr(model, "parameters", None) or {}), **(params or {})}
        values: dict[str, Any] = load_params(merged)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def gpu_overrides(settings: Settings) -> dict[str, Any]:
    """EngineOptions fields for the GPU choice in `settings` (LLMCTL_GPUS... or `run`/`serve --gpus`...).

    The choice is per process, not per model, so it travels in Settings to wherever engines start (a `run`
    session, the gateway's scheduler) and becomes explicit options there. A bad value is a UsageError.
    """
    from llmctl.runtime import gpu

    return {"gpus": settings.gpus or None, "split_mode": settings.split_mode or None,
            "tensor_split": gpu.parse_tensor_split(settings.tensor_split)}


def context_size(model: Any, options: EngineOptions) -> int:
    """Context per slot: options, else the model's num_ctx, else min(model context, DEFAULT_CTX); never more
    than the model was trained for (Ollama clamps the same way: more only costs memory and garbles output)."""
    params = getattr(model, "parameters", None) or {}
    num_ctx = params.get("num_ctx")
    ctx = options.ctx_size or (int(num_ctx) if isinstance(num_ctx, int) and 0 < num_ctx <= 1 << 24 else None)
    model_ctx = getattr(getattr(model, "facts", None), "context_size", None)
    if not ctx:
        ctx = min(int(model_ctx), DEFAULT_CTX) if model_ctx else DEFAULT_CTX
    elif model_ctx and int(model_ctx) > 0 and ctx > int(model_ctx):
        ctx = int(model_ctx)
    return max(1, int(ctx))


def _same_file(a: Path, b: Path) -> bool:
    """The same adapter bytes: same path, or same size and content (a store blob is named by its sha256)."""
    try:
        if a.resolve() == b.resolve():
            return True
        if a.stat().st_size != b.stat().st_size:
            return False
    except OSError:
        return False

    def digest(p: Path) -> str:
        if re.fullmatch(r"[0-9a-f]{64}", p.name):
            return p.name
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    return digest(a) == digest(b)


def merge_lora(adapters: Any, lora: Any) -> list[tuple[Path, float]]:
    """The model's ADAPTER files at scale 1.0, then `lora`; a `lora` entry for the same bytes sets its scale."""
    out: list[tuple[Path, float]] = [(Path(p), 1.0) for p in adapters]
    for path, scale in lora:
        path = Path(path)
        for i, (have, _) in enumerate(out):
            if _same_file(have, path):
                out[i] = (have, float(scale))
                break
        else:
            out.append((path, float(scale)))
    return out


def place(model: Any, options: EngineOptions, engine: Engine) -> Any:
    """GPU placement (which GPUs, how many layers) for a CUDA engine; None for a CPU engine."""
    if engine.kind != "cuda":
        return None
    from llmctl.runtime import gpu

    parallel = max(1, int(options.parallel))
    return gpu.place(model, context_size(model, options) * parallel, num_gpu=options.gpu_layers, gpus=options.gpus,
                     split_mode=options.split_mode, tensor_split=options.tensor_split)


def build_command(settings: Settings, model: Any, options: EngineOptions, engine: Engine, host: str, port: int,
                  mode: str, *, placement: Any = None, weights: Path | None = None) -> list[str]:
    """The llama-server command line; `placement` (from `place`) supplies -ngl and the split flags, `weights`
    the path for `-m` when it is not the first weights blob (a split model: `splits.engine_weights`)."""
    ctx = context_size(model, options)
    parallel = max(1, int(options.parallel))
    cmd = [str(engine.path), "-m", str(weights or model.weights[0]), "--host", host, "--port", str(port),
           "-np", str(parallel), "-c", str(ctx * parallel), "--no-webui", "--metrics",
           "--alias", str(getattr(model, "reference", "model"))]
    if options.threads:
        cmd += ["-t", str(options.threads)]
    gpu_layers = options.gpu_layers
    if placement is not None and placement.plan is not None:
        gpu_layers = placement.plan.gpu_layers
        cmd += list(placement.args)
    elif gpu_layers is None and engine.kind == "cuda":
        gpu_layers = 999
    if gpu_layers is not None:
        cmd += ["-ngl", str(gpu_layers)]
    for path, scale in merge_lora(getattr(model, "adapters", ()) or (), options.lora):
        cmd += ["--lora-scaled", f"{path}:{scale:g}"]
    if getattr(model, "projector", None):
        cmd += ["--mmproj", str(model.projector)]
    if mode == JINJA:
        cmd.append("--jinja")
        if getattr(model, "chat_template", None):
            settings.run_dir.mkdir(parents=True, exist_ok=True)
            tpl = settings.run_dir / f"chat-template-{str(getattr(model, 'digest', 'x')).split(':')[-1][:16]}.jinja"
            tpl.write_text(model.chat_template)
            cmd += ["--chat-template-file", str(tpl)]
    return cmd + list(options.extra_args)
