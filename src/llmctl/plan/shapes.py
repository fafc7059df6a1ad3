"""Which instance shapes are allowed and which fit in memory.

TP must divide the attention heads, and either divide the KV heads or be a multiple of them (vLLM and SGLang
then replicate each KV head over TP / kv_heads ranks); quantized checkpoints also need every TP slice of a
quantized matrix to hold whole quantization groups. For each GPU count, TP is the largest in-node size and PP
takes the rest; TP may also span nodes (priced over the NIC). MoE models add DP-attention groups: DP ranks of
TP t each, with the routed experts spread over all DP x TP GPUs (expert parallelism), one lockstep instance.
Multi-node TP x PP shapes are kept only when no single-node shape fits the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmctl.errors import PlanError
from llmctl.plan import memory
from llmctl.plan.memory import MemoryBreakdown, Shape
from llmctl.plan.profiles import GpuProfile, ModelProfile, divisors
from llmctl.plan.units import fmt_bytes

MIN_USEFUL_BATCH = 32
"""Without a rate, an instance should hold at least this many concurrent full-length sequences: decode is
bandwidth-bound, so a handful of sequences leaves most of each step's weight read unused (70B on two 80 GB
GPUs fits, but with KV for ~7 sequences). Here, below both the solver and `explain`, which cite it."""


def tp_problem(model: ModelProfile, tp: int) -> str | None:
    """Why TP `tp` cannot shard this model, or None."""
    if model.num_attention_heads % tp:
        return f"{model.num_attention_heads} attention heads"
    kv_heads = model.num_kv_heads
    if not model.is_mla and kv_heads % tp and tp % kv_heads:
        return f"{kv_heads} KV heads (TP must divide them or be a multiple of them)"
    q = model.quant
    block = q.group_size if q.group_size > 0 else (128 if q.weight_format == "fp8" and q.declared else 0)
    if block and q.scope == "linear":
        width = model.intermediate_size if not model.is_moe or model.dense_layers else 0
        for name, size in (("intermediate size", width), ("shared expert width", model.shared_expert_intermediate_size)):
            if size and (size % tp or (size // tp) % block):
                return f"the {name} {size}: each TP slice must hold whole {block}-wide quantization groups"
    return None


def valid_tps(model: ModelProfile, gpus_per_node: int) -> list[int]:
    """TP sizes inside one node that can shard the model."""
    return [t for t in divisors(gpus_per_node) if tp_problem(model, t) is None]


def multinode_tps(model: ModelProfile, gpus_per_node: int, node_budget: int) -> list[int]:
    """TP sizes that span whole nodes (all-reduce over the NIC)."""
    return [k * gpus_per_node for k in range(2, node_budget + 1) if tp_problem(model, k * gpus_per_node) is None]


def check_tp(model: ModelProfile, tp: int, gpus_per_node: int) -> None:
    """A forced `--tp` must obey the same rules; the error lists the sizes that would."""
    allowed = valid_tps(model, gpus_per_node)
    why = tp_problem(model, tp)
    if why is None and (tp in allowed or tp % gpus_per_node == 0):
        return
    reasons = [why] if why else []
    if tp > gpus_per_node and tp % gpus_per_node or tp < gpus_per_node and gpus_per_node % tp:
        reasons.append(f"a {gpus_per_node}-GPU node")
    raise PlanError(
        f"TP {tp} cannot divide {' and '.join(reasons)} of {model.name}",
        hint=f"TP sizes that fit: {', '.join(map(str, allowed))} (or a multiple of {gpus_per_node} across nodes)",
    )


def _gpu_counts(gpus_per_node: int, node_budget: int) -> list[int]:
    return divisors(gpus_per_node) + [k * gpus_per_node for k in range(2, node_budget + 1)]


def _tp_pp_shapes(model: ModelProfile, gpn: int, node_budget: int, tp: int | None, pp: int | None) -> list[Shape]:
    tps = [tp] if tp else valid_tps(model, gpn)
    wide = [tp] if tp and tp > gpn else ([] if tp else multinode_tps(model, gpn, node_budget))
    ep = model.is_moe
    shapes: list[Shape] = []
    for g in _gpu_counts(gpn, node_budget):
        options = []
        fitting = [t for t in tps if g % t == 0 and t <= gpn]
        if fitting:
            t = max(fitting)
            options.append(Shape(t, g // t, 1, ep and t > 1))
        if g in wide:
            options.append(Shape(g, 1, 1, ep))
        for s in options:
            if (pp and s.pp != pp) or s.pp > model.num_layers or s in shapes:
                continue
            shapes.append(s)
    return shapes


def _dp_shapes(model: ModelProfile, gpn: int, node_budget: int, tp: int | None, pp: int | None) -> list[Shape]:
    """MoE DP-attention groups: dp ranks of TP t (t inside a node), experts over all dp x t GPUs."""
    if not model.is_moe or (pp and pp != 1):
        return []
    tps = [tp] if tp else valid_tps(model, gpn)
    out = []
    for g in _gpu_counts(gpn, node_budget):
        for t in tps:
            if t <= gpn and g % t == 0 and g // t >= 2:
                out.append(Shape(t, 1, g // t, True))
    return out


def candidate_shapes(
    model: ModelProfile, gpus_per_node: int, node_budget: int, tp: int | None = None, pp: int | None = None
) -> list[Shape]:
    """TP x PP shapes (one per GPU count, plus TP across whole nodes), then MoE DP-attention groups."""
    return _tp_pp_shapes(model, gpus_per_node, node_budget, tp, pp) + _dp_shapes(model, gpus_per_node, node_budget,
                                                                                  tp, pp)


@dataclass(frozen=True)
class Fit:
    shape: Shape
    memory: MemoryBreakdown


def fitting_shapes(
    model: ModelProfile,
    gpu: GpuProfile,
    gpus_per_node: int,
    node_budget: int,
    wdtype: str,
    kvdtype: str,
    max_model_len: int,
    tp: int | None = None,
    pp: int | None = None,
    *,
    windowed: bool = True,
    utilization: Callable[[Shape], float] | None = None,
) -> tuple[list[Fit], list[Fit]]:
    """(shapes that fit, shapes tried). Multi-node TP x PP shapes are dropped when a single-node shape fits;
    DP-attention groups may span nodes (wide expert parallelism is priced, not excluded). `utilization` gives a
    P/D role's own share of device memory per shape (default: vLLM's)."""
    def breakdown(s: Shape) -> MemoryBreakdown:
        util = utilization(s) if utilization else memory.GPU_MEMORY_UTILIZATION
        return memory.memory_breakdown(model, gpu, s, wdtype, kvdtype, max_model_len, windowed=windowed,
                                       utilization=util)

    tried = [Fit(s, breakdown(s)) for s in candidate_shapes(model, gpus_per_node, node_budget, tp, pp)]
    fits = [f for f in tried if f.memory.fits]
    single = [f for f in fits if f.shape.gpus <= gpus_per_node]
    if not single:
        return fits, tried
    wide_ep = [f for f in fits if f.shape.gpus > gpus_per_node and f.shape.dp > 1]
    return single + wide_ep, tried


def describe_misfit(fit: Fit) -> str:
    """Why the largest shape tried does not fit, in the user's units."""
    m = fit.memory
    if m.kv_free <= 0:
        return (
            f"{fit.shape} needs {fmt_bytes(m.weights)} of weights per GPU plus "
            f"{fmt_bytes(m.activations + m.runtime)} of activations and runtime, over the "
            f"{fmt_bytes(m.budget)} budget"
        )
    return (
        f"{fit.shape} leaves room for {m.kv_tokens:,} tokens of KV cache per instance, "
        f"less than one {m.max_model_len:,}-token sequence"
    )
