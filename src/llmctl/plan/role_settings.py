"""Engine settings computed for each role from that role's own shape and memory, never copied between roles.

- vLLM `--gpu-memory-utilization`: the role's memory share (`MemoryBreakdown.utilization`): vLLM's default, lower
  for an LMCache P/D role whose transfer buffer lives outside vLLM's pool (plan/lmcache.py).
- SGLang `--mem-fraction-static`: (weights + KV pool) / device memory, the role's own. SGLang's share covers only
  those two; activations and CUDA graph buffers come out of the rest (docs/advanced_features/
  hyperparameter_tuning.md: "mem_fraction_static = (model weights + KV cache pool) / GPU memory capacity").
- vLLM `--block-size` where the connector's deployments set it (NixlConnector: 128, not for MLA), and
  `--no-disable-hybrid-kv-cache-manager` where the plan sizes sliding-window layers by their window under a
  connector (data/plan/pd-rules.yaml says why and where from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmctl.plan import lmcache, memory, pd_rules
from llmctl.plan.types import Plan, Role, Step
from llmctl.plan.units import fmt_bytes


@dataclass(frozen=True)
class RoleSettings:
    gpu_memory_utilization: float  # vLLM
    mem_fraction_static: float  # SGLang
    block_size: int | None  # vLLM --block-size; None: the engine's default
    hybrid_kv_cache: bool  # vLLM --no-disable-hybrid-kv-cache-manager


def mem_fraction_static(role: Role) -> float:
    """(weights + KV pool) per GPU over device memory, rounded down to 0.01 so SGLang never takes more."""
    mem = role.memory
    return math.floor(mem.static_bytes / mem.device_bytes * 100) / 100


def _block_size(plan: Plan) -> tuple[int | None, str]:
    if plan.mode != "disaggregated" or plan.engine != "vllm":
        return None, ""
    entry = pd_rules.setting(plan.engine, plan.kv_connector, "block_size")
    if not entry or (plan.request.model.is_mla and not entry.get("mla", True)):
        return None, ""
    return int(entry["size"]), f"{entry['says']} ({pd_rules.sources(entry)})"


def _hybrid_kv_cache(plan: Plan) -> tuple[bool, str]:
    if plan.mode != "disaggregated" or plan.engine != "vllm" or not plan.request.model.sliding_layers:
        return False, ""
    entry = pd_rules.setting(plan.engine, plan.kv_connector, "hybrid_kv_cache")
    return (True, f"{entry['says']} ({pd_rules.sources(entry)})") if entry else (False, "")


def role_settings(plan: Plan, role: Role) -> RoleSettings:
    return RoleSettings(
        gpu_memory_utilization=role.memory.utilization,
        mem_fraction_static=mem_fraction_static(role),
        block_size=_block_size(plan)[0],
        hybrid_kv_cache=_hybrid_kv_cache(plan)[0],
    )


def _utilization_formula(plan: Plan, r: Role) -> str:
    default = memory.GPU_MEMORY_UTILIZATION
    if lmcache.is_pd(plan):
        buf = lmcache.buffers(r.memory).of(r.name)
        kind = "sender" if r.name == "prefill" else "receiver"
        return (f"min({default}, 1 - (1 GiB CUDA context + {lmcache.gib(buf)} LMCache {kind} buffer) / "
                f"{fmt_bytes(r.memory.device_bytes)} device), rounded down: the buffer lives outside vLLM's pool")
    if plan.mode == "disaggregated":
        return (f"vLLM's default share: {plan.kv_connector} registers the KV cache in place (kv_buffer_device "
                "cuda), so this role keeps no transfer buffer outside vLLM; the rest holds the CUDA context")
    return "vLLM's default share; the rest holds the CUDA context and allocations outside vLLM's profiler"


def explain_steps(plan: Plan) -> list[Step]:
    """Each role's rendered memory share with its formula, then the connector's block size and hybrid-cache flag."""
    steps: list[Step] = []
    for r in plan.roles:
        mem = r.memory
        if plan.engine == "sglang":
            steps.append(Step("memory", f"[{r.name}] mem-fraction-static", f"{mem_fraction_static(r):.2f}",
                              f"(weights {fmt_bytes(mem.weights)} + KV pool {fmt_bytes(max(0, mem.kv_free))}) / "
                              f"{fmt_bytes(mem.device_bytes)} device, rounded down: SGLang's share holds weights and KV "
                              f"only; activations {fmt_bytes(mem.activations)} and runtime {fmt_bytes(mem.runtime)} "
                              "stay outside it"))
        else:
            steps.append(Step("memory", f"[{r.name}] gpu-memory-utilization", f"{mem.utilization:.2f}",
                              _utilization_formula(plan, r)))
    size, why = _block_size(plan)
    if size is not None:
        steps.append(Step("memory", "[prefill] [decode] block size", f"{size} tokens", why))
    hybrid, why = _hybrid_kv_cache(plan)
    if hybrid:
        steps.append(Step("memory", "[prefill] [decode] hybrid KV cache", "kept on", why))
    return steps
