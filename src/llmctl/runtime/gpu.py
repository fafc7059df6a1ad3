"""NVIDIA GPUs for engines: probing (nvidia-smi), the layer-offload planner, device selection, PROCESSOR labels.

Probing asks `nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version,uuid` (no
CUDA context is created). The planner is pure: from a model's GGUF shape (per-layer tensor bytes read from the
tensor infos, head counts for the KV cache), the context llama-server will allocate (`-c`, all slots) and the
free VRAM of the chosen GPUs it decides how many layers go to the GPU:

- everything fits (all repeating layers, their KV cache, the output layer and a compute reserve): `-ngl 999`;
- otherwise as many whole layers as fit (partial offload; the rest runs on the CPU) instead of failing;
- nothing fits: 0 layers, with a reason;
- `num_gpu` (Modelfile PARAMETER or `--num-gpu`) overrides the plan, as in Ollama.

Several GPUs: llama.cpp splits by layer (`--split-mode layer`, the default) in proportion to free memory; the
planner sums the chosen GPUs' room per GPU. `--gpus 0,2` becomes CUDA_VISIBLE_DEVICES=0,2 for the engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from llmctl.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
QUERY = "index,name,memory.total,memory.free,compute_cap,driver_version,uuid"
# per GPU: the CUDA context, cuBLAS workspace and llama.cpp's scratch, measured at ~0.4-0.6 GiB on an H100
CUDA_RESERVE = 640 * MiB
UBATCH = 512  # llama-server's default -ub: sizes the compute graph
SPLIT_MODES = ("none", "layer", "row")
ALL_LAYERS = 999  # what `-ngl` gets when every layer (and the output layer) goes to the GPU


# -- probing ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total: int  # bytes
    free: int  # bytes
    compute_cap: str = ""  # "9.0"
    driver: str = ""
    uuid: str = ""

    @property
    def arch(self) -> str:
        """CMAKE_CUDA_ARCHITECTURES value for this GPU: "9.0" -> "90"."""
        return self.compute_cap.replace(".", "")

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "total": self.total, "free": self.free,
                "compute_cap": self.compute_cap, "driver": self.driver, "uuid": self.uuid}


def parse_query(text: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=<QUERY> --format=csv,noheader,nounits` output (memory in MiB)."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        cells += [""] * (7 - len(cells))

        def mib(v: str) -> int:
            try:
                return int(float(v)) * MiB
            except ValueError:
                return 0

        out.append(Gpu(int(cells[0]), cells[1], mib(cells[2]), mib(cells[3]), cells[4] if cells[4] != "[N/A]" else "",
                       cells[5], cells[6]))
    return out


def nvidia_smi() -> str | None:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    for p in ("/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi"):
        if os.access(p, os.X_OK):
            return p
    return None


def query_gpus(timeout: float = 15) -> list[Gpu]:
    """The NVIDIA GPUs nvidia-smi reports, with free memory now; [] without a driver or GPU."""
    smi = nvidia_smi()
    if not smi:
        return []
    try:
        r = subprocess.run([smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_query(r.stdout) if r.returncode == 0 else []


def no_gpu_reason() -> str | None:
    """Why no GPU can be used here, or None when nvidia-smi lists one."""
    if not nvidia_smi():
        return "no NVIDIA driver (nvidia-smi not found)"
    if not query_gpus():
        return "nvidia-smi lists no GPU"
    return None


def cuda_archs(gpus: Sequence[Gpu]) -> str | None:
    """CMAKE_CUDA_ARCHITECTURES for these GPUs ("90", "86;90"), from nvidia-smi's compute_cap; None if unknown."""
    archs = sorted({g.arch for g in gpus if g.arch.isdigit()}, key=int)
    return ";".join(archs) or None


# -- choosing devices ------------------------------------------------------------------------------------------
def parse_gpus(spec: str | None) -> tuple[str, ...] | None:
    """`--gpus`: "all", "0,2", or GPU UUIDs. None/"all" means every GPU; "none"/"" means none (CPU)."""
    if spec is None or spec.strip().lower() == "all":
        return None
    s = spec.strip()
    if s.lower() in ("none", "-1", ""):
        return ()
    items = tuple(x.strip() for x in s.split(",") if x.strip())
    for x in items:
        if not (x.isdigit() or x.startswith(("GPU-", "MIG-"))):
            raise UsageError(f"--gpus {spec!r}: expected 'all', 'none', GPU indexes like 0,1 or GPU UUIDs")
    return items


def select(gpus: Sequence[Gpu], chosen: tuple[str, ...] | None) -> list[Gpu]:
    """The GPUs named by `parse_gpus`'s result (in that order); an unknown one is a UsageError."""
    if chosen is None:
        return list(gpus)
    out = []
    for x in chosen:
        g = next((g for g in gpus if (x.isdigit() and g.index == int(x)) or g.uuid == x), None)
        if g is None:
            have = ", ".join(f"{g.index} ({g.name})" for g in gpus) or "none"
            raise UsageError(f"--gpus: no GPU {x} on this machine (GPUs: {have})")
        out.append(g)
    return out


def visible_devices_env(chosen: tuple[str, ...] | None) -> dict[str, str]:
    """The engine's CUDA_VISIBLE_DEVICES for `--gpus` (empty: inherit)."""
    if chosen is None:
        return {}
    return {"CUDA_VISIBLE_DEVICES": ",".join(chosen) if chosen else "-1"}


def split_args(split_mode: str | None = None, tensor_split: Sequence[float] | None = None,
               main_gpu: int | None = None) -> list[str]:
    """llama-server flags for several GPUs."""
    args: list[str] = []
    if split_mode:
        if split_mode not in SPLIT_MODES:
            raise UsageError(f"--split-mode {split_mode!r}: expected one of {', '.join(SPLIT_MODES)}")
        args += ["--split-mode", split_mode]
    if tensor_split:
        if any(x < 0 for x in tensor_split) or not any(tensor_split):
            raise UsageError("--tensor-split: proportions must be non-negative and not all zero")
        args += ["--tensor-split", ",".join(f"{x:g}" for x in tensor_split)]
    if main_gpu is not None:
        args += ["--main-gpu", str(main_gpu)]
    return args


def parse_tensor_split(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(x) for x in re.split(r"[,/]", text) if x.strip())
    except ValueError:
        raise UsageError(f"--tensor-split {text!r}: expected proportions like 3,1") from None


# -- model shape -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape:
    """What the planner needs from a GGUF."""

    layers: int  # repeating blocks (block_count)
    layer_bytes: tuple[int, ...]  # weights of each block
    other_bytes: int  # token embeddings, output layer, norms (non-repeating)
    kv_bytes_per_token: int  # K+V cache, all layers, f16
    n_vocab: int = 32000
    n_embd: int = 4096

    @property
    def weights(self) -> int:
        return sum(self.layer_bytes) + self.other_bytes

    @classmethod
    def from_kv(cls, kv: Mapping[str, Any], layer_bytes: Sequence[int] | None = None, other_bytes: int = 0,
                file_size: int | None = None) -> "ModelShape":
        arch = str(kv.get("general.architecture") or "llama")

        def get(key: str, default: Any = None) -> Any:
            v = kv.get(f"{arch}.{key}", default)
            if isinstance(v, (list, tuple)):  # per-layer arrays (e.g. head_count_kv): the largest
                v = max(v) if v else default
            return v

        layers = int(get("block_count", 0) or 0)
        if layers <= 0:
            raise ValueError(f"GGUF metadata has no {arch}.block_count")
        n_embd = int(get("embedding_length", 0) or 0)
        n_head = int(get("attention.head_count", 0) or 0) or 1
        n_head_kv = int(get("attention.head_count_kv", n_head) or n_head)
        k_len = int(get("attention.key_length", 0) or 0) or (n_embd // n_head if n_embd else 128)
        v_len = int(get("attention.value_length", 0) or 0) or k_len
        kv_per_token = layers * n_head_kv * (k_len + v_len) * 2  # f16 cache
        tokens = kv.get("tokenizer.ggml.tokens")
        n_vocab = int(getattr(tokens, "length", 0) or (len(tokens) if isinstance(tokens, (list, tuple)) else 0)
                      or get("vocab_size", 32000) or 32000)
        if layer_bytes is None:  # no tensor infos: the file split evenly, one layer's worth for the rest
            size = int(file_size or 0)
            each = size // (layers + 1)
            layer_bytes, other_bytes = [each] * layers, size - each * layers
        return cls(layers, tuple(int(x) for x in layer_bytes), int(other_bytes), kv_per_token, n_vocab, n_embd or 4096)


def tensor_bytes(path: Path) -> tuple[dict[str, Any], list[int], int]:
    """A GGUF's key/values, bytes per repeating block (`blk.N.*`) and bytes of everything else."""
    import mmap

    from gguf import GGML_QUANT_SIZES

    from llmctl.artifact.gguf_meta import MAGIC, _Cursor

    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            cur = _Cursor(buf, Path(path))
            cur.take(4)
            cur.unpack("<I", 4)
            n_tensors = cur.unpack("<Q", 8)
            n_kv = cur.unpack("<Q", 8)
            kv: dict[str, Any] = {}
            for _ in range(n_kv):
                key = cur.string()
                kv[key] = cur.value(cur.unpack("<I", 4))
            blocks: dict[int, int] = {}
            other = 0
            for _ in range(n_tensors):
                name = cur.string()
                n_dims = cur.unpack("<I", 4)
                elements = 1
                for _ in range(n_dims):
                    elements *= cur.unpack("<Q", 8)
                ttype = cur.unpack("<I", 4)
                cur.take(8)
                block, size = GGML_QUANT_SIZES.get(ttype, (1, 4))
                nbytes = elements // block * size
                m = re.match(r"blk\.(\d+)\.", name)
                if m:
                    blocks[int(m.group(1))] = blocks.get(int(m.group(1)), 0) + nbytes
                else:
                    other += nbytes
        finally:
            buf.close()
    return kv, [blocks[i] for i in sorted(blocks)], other


def model_shape(model: Any) -> ModelShape | None:
    """The shape of a stored model (its first weights file); None when it cannot be read."""
    try:
        path = Path(model.weights[0])
        kv, layers, other = tensor_bytes(path)
        return ModelShape.from_kv(kv, layers or None, other, path.stat().st_size)
    except Exception:
        return None


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


def gib(n: int | float) -> str:
    return f"{n / GiB:.1f} GiB"


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
