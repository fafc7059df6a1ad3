"""Errors for plans that cannot fit, with what would fit instead: more nodes, FP8, or a larger GPU."""

from __future__ import annotations

from dataclasses import replace

from llmctl.errors import PlanError
from llmctl.plan import memory, shapes
from llmctl.plan.catalog import gpu_profiles
from llmctl.plan.types import PlanRequest
from llmctl.plan.units import fmt_bytes, fmt_count

MAX_SUGGESTED_NODES = 16


def _fits(req: PlanRequest, wdtype: str, kvdtype: str, max_len: int, node_budget: int, gpu=None) -> shapes.Fit | None:
    fits, _ = shapes.fitting_shapes(
        req.model, gpu or req.gpu, req.gpus_per_node, node_budget, wdtype, kvdtype, max_len, req.tp, req.pp
    )
    return min(fits, key=lambda f: f.shape.gpus) if fits else None


def no_fit_error(req: PlanRequest, wdtype: str, kvdtype: str, max_len: int, tried: list[shapes.Fit]) -> PlanError:
    m = req.model
    weights = memory.weight_bytes_total(m, wdtype)
    budget = req.node_budget
    what = f"{m.name} ({fmt_count(m.params().total)} params, {fmt_bytes(weights)} of {wdtype} weights)"
    where = f"{budget} node(s) of {req.gpus_per_node}x {req.gpu.name}"
    why = shapes.describe_misfit(max(tried, key=lambda f: f.shape.gpus)) if tried else "no TP x PP shape is allowed"
    options: list[str] = []
    flag = "--nodes" if req.nodes is not None else "--max-nodes"
    for n in range(budget + 1, MAX_SUGGESTED_NODES + 1):
        fit = _fits(req, wdtype, kvdtype, max_len, n)
        if fit:
            options.append(f"{flag} {fit.shape.nodes(req.gpus_per_node)} ({fit.shape})")
            break
    if wdtype == "bf16":
        fit = _fits(replace(req, dtype="fp8"), "fp8", "fp8", max_len, budget)
        if fit:
            options.append(f"--dtype fp8 ({fit.shape}, {fmt_bytes(memory.weight_bytes_total(m, 'fp8'))} of weights)")
    for gpu in gpu_profiles():
        if gpu.name == req.gpu.name or gpu.memory_bytes <= req.gpu.memory_bytes:
            continue
        fit = _fits(req, wdtype, kvdtype, max_len, budget, gpu)
        if fit:
            options.append(f"--gpu {gpu.name} ({fit.shape})")
    if req.tp or req.pp:
        fit = _fits(replace(req, tp=None, pp=None), wdtype, kvdtype, max_len, budget)
        if fit:
            options.append(f"no --tp/--pp ({fit.shape})")
    hint = "would fit: " + "; ".join(options) if options else f"no plan within {MAX_SUGGESTED_NODES} nodes fits"
    return PlanError(f"{what} does not fit {where}: {why}", hint=hint)
