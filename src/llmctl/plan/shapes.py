"""Which instance shapes (TP x PP) are allowed and which fit in memory.

Rules, in order: TP stays inside a node and divides both the attention heads and the KV heads (so every
rank holds whole heads and no KV head is replicated); for a given GPU count TP is as large as those rules
allow and PP takes the rest; PP spans nodes only when no single-node shape fits the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.errors import PlanError
from llmctl.plan import memory
from llmctl.plan.memory import MemoryBreakdown, Shape
from llmctl.plan.profiles import GpuProfile, ModelProfile, divisors
from llmctl.plan.units import fmt_bytes


def valid_tps(model: ModelProfile, gpus_per_node: int) -> list[int]:
    """TP sizes inside one node that divide the attention heads and the KV heads."""
    return [
        t
        for t in divisors(gpus_per_node)
        if model.num_attention_heads % t == 0 and model.num_kv_heads % t == 0
    ]


def check_tp(model: ModelProfile, tp: int, gpus_per_node: int) -> None:
    """A forced `--tp` must obey the same rules; the error lists the sizes that would."""
    allowed = valid_tps(model, gpus_per_node)
    if tp in allowed:
        return
    why = []
    if model.num_attention_heads % tp:
        why.append(f"{model.num_attention_heads} attention heads")
    if model.num_kv_heads % tp:
        why.append(f"{model.num_kv_heads} KV heads")
    if tp > gpus_per_node or gpus_per_node % tp:
        why.append(f"a {gpus_per_node}-GPU node")
    raise PlanError(
        f"TP {tp} cannot divide {' and '.join(why)} of {model.name}",
        hint=f"TP sizes that fit: {', '.join(map(str, allowed))}",
    )


def candidate_shapes(
    model: ModelProfile, gpus_per_node: int, node_budget: int, tp: int | None = None, pp: int | None = None
) -> list[Shape]:
    """One shape per GPU count: divisors of a node, then whole multiples of a node up to the budget."""
    tps = [tp] if tp else valid_tps(model, gpus_per_node)
    counts = divisors(gpus_per_node) + [k * gpus_per_node for k in range(2, node_budget + 1)]
    shapes: list[Shape] = []
    for g in counts:
        fitting = [t for t in tps if g % t == 0]
        if not fitting:
            continue
        t = max(fitting)
        p = g // t
        if pp and p != pp:
            continue
        if p > model.num_layers:
            continue
        shape = Shape(t, p)
        if shape not in shapes:
            shapes.append(shape)
    return shapes


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
) -> tuple[list[Fit], list[Fit]]:
    """(shapes that fit, shapes tried). Multi-node shapes are dropped when a single-node shape fits."""
    tried = [
        Fit(s, memory.memory_breakdown(model, gpu, s, wdtype, kvdtype, max_model_len))
        for s in candidate_shapes(model, gpus_per_node, node_budget, tp, pp)
    ]
    fits = [f for f in tried if f.memory.fits]
    single = [f for f in fits if f.shape.gpus <= gpus_per_node]
    return (single or fits), tried


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
