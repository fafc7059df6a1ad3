"""NVIDIA GPUs for engines: probing and device choice (`devices`), a model's shape (`shape`), the layer-offload
planner and an engine's placement (`offload`).

The names below are the package's public surface, so callers write `from llmctl.runtime import gpu` and
`gpu.place(...)` without knowing which module holds what. `docs/gpu.md` describes the behaviour.
"""

from llmctl.runtime.gpu.devices import (GiB, Gpu, MiB, QUERY, ROW_SPLIT_FAILURE, ROW_UNSUPPORTED, SPLIT_MODES,
                                        check_choice, cuda_archs, gib,
                                        no_gpu_reason, nvidia_smi, parse_apps, parse_gpus, parse_query,
                                        parse_tensor_split, query_gpus, select, split_args, visible_devices_env,
                                        vram_by_pid)
from llmctl.runtime.gpu.offload import (ALL_LAYERS, CUDA_RESERVE, UBATCH, GpuPlacement, OffloadPlan, oom_hint,
                                        place, plan_offload, processor_label, reserve_bytes)
from llmctl.runtime.gpu.shape import ModelShape, block_bytes, model_shape

__all__ = [
    "ALL_LAYERS", "CUDA_RESERVE", "GiB", "Gpu", "GpuPlacement", "MiB", "ModelShape", "OffloadPlan", "QUERY",
    "ROW_SPLIT_FAILURE", "ROW_UNSUPPORTED", "SPLIT_MODES", "UBATCH", "block_bytes", "check_choice", "cuda_archs", "gib", "model_shape", "no_gpu_reason",
    "nvidia_smi", "oom_hint", "parse_apps", "parse_gpus", "parse_query", "parse_tensor_split", "place", "plan_offload",
    "processor_label", "query_gpus", "reserve_bytes", "select", "split_args", "visible_devices_env", "vram_by_pid",
]
