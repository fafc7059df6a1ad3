"""The layer-offload planner: how many layers of a model go to the GPU(s), and the engine's GPU placement.

The planner is pure: from a model's shape (`shape.ModelShape`), the context llama-server will allocate
(`-c`, all slots) and the free VRAM of the chosen GPUs it decides how many layers go to the GPU:

- everything fits (all repeating layers, their KV cache, the output layer and a compute reserve): `-ngl 999`;
- otherwise as many whole layers as fit (partial offload; the rest runs on the CPU) instead of failing;
- nothing fits: 0 layers, with a reason;
- `num_gpu` (Modelfile PARAMETER or `--num-gpu`) overrides the plan, as in Ollama.

Several GPUs: llama.cpp splits by layer (`--split-mode layer`, the default) in proportion to free memory; the
planner sums the chosen GPUs' room per GPU. `place` puts probing, device choice and the plan together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from llmctl.runtime.gpu.devices import (Gpu, MiB, gib, parse_gpus, query_gpus, select, split_args,
                                        visible_devices_env)
from llmctl.runtime.gpu.shape import ModelShape, model_shape

# per GPU: the CUDA context, cuBLAS workspace and llama.cpp's scratch, measured at ~0.4-0.6 GiB on an H100
CUDA_RESERVE = 640 * MiB
UBATCH = 512  # llama-server's default -ub: sizes the compute graph
ALL_LAYERS = 999  # what `-ngl` gets when every layer (and the output layer) goes to the GPU


# -- the plan --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OffloadPlan:
    layers: int  # repeating layers of the model
    gpu_layers: int  # value for -ngl (ALL_LAYERS when everything, output layer included, is on the GPU)
    reason: str  # one line: why this many
    need: int = 0  # bytes the whole model needs on the GPU(s) at this context
    free: int = 0  # bytes free on the chosen GPUs
    per_gpu_layers: tuple[int, ...] = ()
    overridden: bool = False

    @property
    def offloaded(self) -> int:
        """Repeating layers on the GPU."""
        return min(self.gpu_layers, self.layers) if self.gpu_layers >= 0 else self.layers

    @property
    def full(self) -> bool:
        return self.offloaded >= self.layers

    @property
    def processor(self) -> str:
        return processor_label(self.offloaded, self.layers)

    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers, "gpu_layers": self.gpu_layers, "offloaded": self.offloaded,
                "processor": self.processor, "reason": self.reason, "need": self.need, "free": self.free,
                "per_gpu_layers": list(self.per_gpu_layers), "overridden": self.overridden}


def reserve_bytes(shape: ModelShape) -> int:
    """Per GPU: CUDA context + llama.cpp's compute graph (logits for a ubatch, activations)."""
    graph = shape.n_vocab * UBATCH * 4 + shape.n_embd * UBATCH * 4 * 8
    return CUDA_RESERVE + graph


def plan_offload(shape: ModelShape, ctx_tokens: int, free: Sequence[int], *, num_gpu: int | None = None) -> OffloadPlan:
    """How many layers go to the GPU(s) with `free` bytes each, for `ctx_tokens` of KV cache (all slots)."""
    n = shape.layers
    kv_layer = shape.kv_bytes_per_token * max(1, ctx_tokens) // n
    need = shape.weights + shape.kv_bytes_per_token * max(1, ctx_tokens) + reserve_bytes(shape) * max(1, len(free))
    total_free = sum(free)
    if num_gpu is not None:
        if num_gpu < 0:
            num_gpu = ALL_LAYERS
        why = "num_gpu=%d set by the model or the command line" % num_gpu
        return OffloadPlan(n, num_gpu, why, need, total_free, (), overridden=True)
    if not free:
        return OffloadPlan(n, 0, "no GPU", need, 0)
    reserve = reserve_bytes(shape)
    # fill GPUs in order with whole layers; the output layer (other_bytes) goes with the last layer
    per_gpu: list[int] = []
    i = 0
    room_left = 0
    for f in free:
        room = f - reserve
        placed = 0
        while i < n and room >= shape.layer_bytes[i] + kv_layer:
            room -= shape.layer_bytes[i] + kv_layer
            i += 1
            placed += 1
        per_gpu.append(placed)
        room_left = room
    if i >= n and room_left >= shape.other_bytes:
        return OffloadPlan(n, ALL_LAYERS, f"all {n} layers fit: needs ~{gib(need)} of {gib(total_free)} free",
                           need, total_free, tuple(per_gpu))
    if i >= n:  # every block fits but not the output layer: keep it on the CPU
        i = n
    if i == 0:
        return OffloadPlan(n, 0, f"not one layer fits: a layer with its KV cache needs ~{gib(shape.layer_bytes[0] + kv_layer)}, "
                           f"{gib(max(0, total_free - reserve * len(free)))} free after the CUDA reserve", need,
                           total_free, tuple(per_gpu))
    return OffloadPlan(n, i, f"{i}/{n} layers fit (model at ctx {ctx_tokens} needs ~{gib(need)}, {gib(total_free)} free): "
                       f"the rest runs on the CPU", need, total_free, tuple(per_gpu))


def processor_label(gpu_layers: int | None, layers: int | None, *, cuda: bool = True) -> str:
    """Ollama's PROCESSOR column: "100% GPU", "48%/52% CPU/GPU", "100% CPU"."""
    if not cuda or gpu_layers == 0:
        return "100% CPU"
    if gpu_layers is None or gpu_layers < 0 or not layers or gpu_layers >= layers:
        return "100% GPU"
    g = round(100 * gpu_layers / layers)
    if g <= 0:
        return "100% CPU"
    if g >= 100:
        return "100% GPU"
    return f"{100 - g}%/{g}% CPU/GPU"


def oom_hint(shape: ModelShape | None, ctx_tokens: int, free: Sequence[int]) -> str:
    """What would fit, for an out-of-memory message."""
    if shape is None or not free:
        return "try fewer GPU layers (--num-gpu N, or PARAMETER num_gpu N) or a smaller --ctx-size"
    plan = plan_offload(shape, ctx_tokens, free)
    small = next((c for c in (ctx_tokens // 2, ctx_tokens // 4, ctx_tokens // 8, 2048, 1024)
                  if 0 < c < ctx_tokens and plan_offload(shape, c, free).full), None)
    parts = [f"{plan.offloaded}/{shape.layers} layers fit in {gib(sum(free))} free at ctx {ctx_tokens}: "
             f"try --num-gpu {plan.offloaded}"]
    if small:
        parts.append(f"or --ctx-size {small} for all layers")
    return " ".join(parts)


@dataclass(frozen=True)
class GpuPlacement:
    """Everything an engine start needs to know about GPUs: which, how many layers, extra flags and env."""

    gpus: tuple[Gpu, ...] = ()
    plan: OffloadPlan | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def processor(self) -> str:
        return self.plan.processor if self.plan else "100% CPU"


def place(model: Any, ctx_tokens: int, *, num_gpu: int | None = None, gpus: str | None = None,
          split_mode: str | None = None, tensor_split: Sequence[float] | None = None,
          available: Iterable[Gpu] | None = None) -> GpuPlacement:
    """Plan the offload for `model` on this machine's GPUs (or `available`); `ctx_tokens` counts all slots."""
    chosen = parse_gpus(gpus)
    all_gpus = list(available) if available is not None else query_gpus()
    selected = select(all_gpus, chosen) if all_gpus else []
    env = visible_devices_env(chosen)
    args = split_args(split_mode, tensor_split)
    if chosen == ():  # --gpus none: CPU only
        return GpuPlacement((), OffloadPlan(0, 0, "--gpus none: CPU only", overridden=True), (), env)
    shape = model_shape(model)
    if not selected and num_gpu is None:  # a CUDA engine but nvidia-smi does not answer: let llama.cpp try
        return GpuPlacement((), OffloadPlan(shape.layers if shape else 0, ALL_LAYERS,
                                            "free VRAM unknown (nvidia-smi lists no GPU): all layers"), tuple(args), env)
    if shape is None:
        layers = 0
        plan = OffloadPlan(layers, ALL_LAYERS if num_gpu is None or num_gpu < 0 else num_gpu,
                           "model shape unknown: all layers", overridden=num_gpu is not None)
    else:
        plan = plan_offload(shape, ctx_tokens, [g.free for g in selected], num_gpu=num_gpu)
    return GpuPlacement(tuple(selected), plan, tuple(args), env)
