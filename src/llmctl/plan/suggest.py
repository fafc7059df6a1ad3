"""Errors for plans that cannot fit, with what would fit instead: more nodes, FP8, a larger GPU, a looser SLO."""

from __future__ import annotations

import math
from dataclasses import replace

from llmctl.errors import PlanError
from llmctl.plan import memory, shapes
from llmctl.plan.catalog import gpu_profiles
from llmctl.plan.placement import Pool, nodes_needed
from llmctl.plan.pools import Eval
from llmctl.plan.types import PlanRequest
from llmctl.plan.units import fmt_bytes, fmt_count, fmt_duration

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


def slo_error(what: str, evals: list[Eval], req: PlanRequest) -> PlanError:
    """No shape meets the SLOs even alone at batch 1: say what the fastest shape achieves."""
    w = req.workload
    if not evals:
        return PlanError(f"no {what} instance fits")
    fastest_tpot = min(evals, key=lambda e: e.idle.tpot)
    fastest_ttft = min(evals, key=lambda e: e.idle.ttft)
    bits = []
    if w.tpot_slo is not None and fastest_tpot.idle.tpot > w.tpot_slo:
        bits.append(
            f"TPOT {fmt_duration(w.tpot_slo)} is below the {fmt_duration(fastest_tpot.idle.tpot)} per token that "
            f"{fastest_tpot.shape} on {req.gpu.name} needs even at batch 1"
        )
    if w.ttft_slo is not None and fastest_ttft.idle.ttft > w.ttft_slo:
        bits.append(
            f"TTFT {fmt_duration(w.ttft_slo)} is below the {fmt_duration(fastest_ttft.idle.ttft)} that "
            f"{fastest_ttft.shape} needs for one {w.isl}-token prompt"
        )
    if not bits:
        bits.append("the SLOs leave no room for queueing at any batch size")
    hint = "relax the SLO"
    if w.tpot_slo is not None and fastest_tpot.idle.tpot > w.tpot_slo:
        hint = f"--tpot-slo {math.ceil(fastest_tpot.idle.tpot * 1e3 * 1.1)}ms would fit"
    elif w.ttft_slo is not None and fastest_ttft.idle.ttft > w.ttft_slo:
        hint = f"--ttft-slo {math.ceil(fastest_ttft.idle.ttft * 1e3 * 1.2)}ms or a shorter --isl would fit"
    return PlanError(f"no {what} plan meets the SLOs: " + "; ".join(bits), hint=hint)


def budget_error(what: str, evals: list[Eval], req: PlanRequest) -> PlanError:
    """SLOs are met but the rate needs more nodes than allowed: say how many, and what the budget serves."""
    ok = [e for e in evals if e.capacity > 0]
    best = min(ok, key=lambda e: e.shape.gpus / e.capacity)
    need = best.instances_for(req.workload.rate)
    nodes = nodes_needed([Pool(best.role, best.shape, need)], req.gpus_per_node)
    per_node = max(1, req.gpus_per_node // best.shape.gpus) if best.shape.gpus <= req.gpus_per_node else 0
    fit = per_node * req.node_budget if per_node else req.node_budget // best.shape.nodes(req.gpus_per_node)
    flag = "--nodes" if req.nodes is not None else "--max-nodes"
    return PlanError(
        f"{what}: {req.workload.rate:g} req/s needs {need} instances of {best.shape} "
        f"({best.capacity:.2f} req/s each), {nodes} nodes of {req.gpus_per_node}x {req.gpu.name}; "
        f"{flag} {req.node_budget} serves at most {fit * best.capacity:.2f} req/s",
        hint=f"{flag} {nodes} would fit",
    )
