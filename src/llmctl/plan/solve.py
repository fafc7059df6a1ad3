"""`solve(PlanRequest) -> Plan`: choose dtypes, instance shapes, aggregated or disaggregated pools, pool
sizes and placement, or raise a PlanError that says what would fit instead.

Pure: no I/O beyond reading package data through the profile loaders. The order of decisions is the
order `--format explain` prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan import lmcache, memory, pools, shapes
from llmctl.plan.placement import Pool, nodes_needed, place
from llmctl.plan.pools import Context, Eval
from llmctl.plan.profiles import ceil_div
from llmctl.plan.suggest import budget_error, slo_error
from llmctl.plan.types import (
    DISAGGREGATE,
    DTYPES,
    ENGINES,
    EXECUTORS,
    Decision,
    Expected,
    OperatingPoint,
    Plan,
    PlanRequest,
    Role,
)
from llmctl.plan.units import fmt_duration
from llmctl.plan.validate_vllm import connector_for_engine

CONTEXT_ROUND = 1024
"""`--max-model-len` is ISL + OSL rounded up to this, so prompts a little over the stated ISL still fit."""


MIN_USEFUL_BATCH = 32
"""Without a rate, an instance should hold at least this many concurrent full-length sequences: decode is
bandwidth-bound, so a handful of sequences leaves most of each step's weight read unused (70B on two 80 GB
GPUs fits, but with KV for ~7 sequences)."""


@dataclass(frozen=True)
class Choice:
    ev: Eval
    instances: int

    @property
    def gpus(self) -> int:
        return self.ev.shape.gpus * self.instances


def _check(req: PlanRequest) -> None:
    w = req.workload
    if req.engine not in ENGINES:
        raise InvalidInput(f"unknown engine {req.engine!r}", hint=f"one of {', '.join(ENGINES)}")
    if req.disaggregate not in DISAGGREGATE:
        raise InvalidInput(f"--disaggregate must be one of {', '.join(DISAGGREGATE)}")
    if req.executor not in EXECUTORS:
        raise InvalidInput(f"--executor must be one of {', '.join(EXECUTORS)}")
    if req.executor == "ray" and req.engine != "vllm":
        raise InvalidInput("--executor ray applies to vLLM; SGLang joins nodes with --dist-init-addr itself")
    if req.dtype is not None and req.dtype not in DTYPES:
        raise InvalidInput(f"--dtype must be one of {', '.join(DTYPES)}")
    if w.isl < 1 or w.osl < 1:
        raise InvalidInput("--isl and --osl must be at least 1 token")
    if w.rate is not None and w.rate <= 0:
        raise InvalidInput("--rate must be positive")
    if req.gpus_per_node < 1:
        raise InvalidInput("--gpus-per-node must be at least 1")
    if req.nodes is not None and req.nodes < 1 or req.max_nodes < 1:
        raise InvalidInput("--nodes and --max-nodes must be at least 1")
    if req.pp is not None and req.pp < 1:
        raise InvalidInput("--pp must be at least 1")
    if req.tp is not None:
        shapes.check_tp(req.model, req.tp, req.gpus_per_node)


def dtypes(req: PlanRequest) -> tuple[str, str]:
    """(weight dtype, KV dtype). Default: the checkpoint's own weights and a 16-bit KV cache; `--dtype fp8`
    means FP8 weights (online quantization for 16-bit checkpoints) and an FP8 KV cache."""
    native = req.model.native_dtype
    if req.dtype is None:
        return native, "bf16"
    if req.dtype == "bf16" and native == "fp8":
        raise InvalidInput(
            f"{req.model.name} ships FP8 weights; a BF16 plan needs a BF16 copy of the checkpoint",
            hint="leave --dtype out (or pass --dtype fp8) to serve the FP8 checkpoint",
        )
    return req.dtype, ("fp8" if req.dtype == "fp8" else "bf16")


def max_model_len(req: PlanRequest) -> int:
    w, limit = req.workload, req.model.max_position_embeddings
    if w.isl + w.osl > limit:
        raise InvalidInput(
            f"ISL {w.isl} + OSL {w.osl} exceeds {req.model.name}'s context of {limit:,} tokens",
            hint=f"keep --isl + --osl at or under {limit}",
        )
    return min(ceil_div(w.isl + w.osl, CONTEXT_ROUND) * CONTEXT_ROUND, limit)


def _pick(evals: list[Eval], rate: float | None, req: PlanRequest) -> Choice | None:
    """Fewest GPUs that serve `rate` within the SLOs and the node budget (ties: fewer nodes, lower TPOT);
    without a rate, the smallest instance whose batch reaches MIN_USEFUL_BATCH."""
    best: tuple[tuple[float, ...], Choice] | None = None
    for ev in evals:
        if ev.capacity <= 0:
            continue
        choice = Choice(ev, ev.instances_for(rate))
        used = nodes_needed([Pool(ev.role, ev.shape, choice.instances)], req.gpus_per_node)
        if used > req.node_budget:
            continue
        if rate is None:  # no load to size for: the smallest instance that batches usefully
            key = (ev.batch < MIN_USEFUL_BATCH, choice.gpus, ev.at_capacity.tpot)
        else:
            key = (choice.gpus, used, ev.at_capacity.tpot, ev.at_capacity.ttft)
        if best is None or key < best[0]:
            best = (key, choice)
    return best[1] if best else None


def _aggregated(ctx: Context, fits: list[shapes.Fit], req: PlanRequest) -> Choice | PlanError:
    evals = [pools.eval_aggregated(ctx, f.shape, f.memory) for f in fits]
    choice = _pick(evals, req.workload.rate, req)
    if choice:
        return choice
    if not any(e.capacity > 0 for e in evals):
        return slo_error("aggregated", evals, req)
    return budget_error("aggregated", evals, req)


def _disaggregated(ctx: Context, fits: list[shapes.Fit], req: PlanRequest) -> tuple[Choice, Choice] | PlanError:
    if req.engine == "vllm" and req.kv_connector == lmcache.CONNECTOR:
        return _disaggregated_one_shape(ctx, fits, req)
    decodes = [pools.eval_decode(ctx, f.shape, f.memory) for f in fits]
    dec = _pick(decodes, req.workload.rate, req)
    if dec is None:
        if not any(e.capacity > 0 for e in decodes):
            return slo_error("decode", decodes, req)
        return budget_error("decode pool", decodes, req)
    prefills = [pools.eval_prefill(ctx, f.shape, f.memory, dec.ev) for f in fits]
    pre = _pick(prefills, req.workload.rate, req)
    if pre is None:
        if not any(e.capacity > 0 for e in prefills):
            return slo_error("prefill", prefills, req)
        return budget_error("prefill pool", prefills, req)
    used = nodes_needed(
        [Pool("prefill", pre.ev.shape, pre.instances), Pool("decode", dec.ev.shape, dec.instances)], req.gpus_per_node
    )
    if used > req.node_budget:
        flag = "--nodes" if req.nodes is not None else "--max-nodes"
        return PlanError(
            f"disaggregated: {pre.instances} prefill + {dec.instances} decode instances need {used} nodes, "
            f"over {flag} {req.node_budget}",
            hint=f"{flag} {used} would fit",
        )
    return pre, dec


def _disaggregated_one_shape(ctx: Context, fits: list[shapes.Fit], req: PlanRequest) -> tuple[Choice, Choice] | PlanError:
    """LMCache P/D: prefill rank r writes its KV slice to decode rank r, so both pools take one shape, on one node
    (PP 1). The cheapest pair over the single-node shapes (ties: fewer nodes, lower TPOT)."""
    single = [f for f in fits if f.shape.pp == 1]
    flag = "--nodes" if req.nodes is not None else "--max-nodes"
    if not single:
        return PlanError(
            f"LMCache P/D needs every instance on one node (PP 1), and {req.model.name} needs at least "
            f"{min(f.shape.gpus for f in fits)} GPUs over {min(f.shape.nodes(req.gpus_per_node) for f in fits)} nodes",
            hint="use --kv-connector NixlConnector, --dtype fp8 or a larger --gpu",
        )
    rate = req.workload.rate
    best: tuple[tuple[float, ...], tuple[Choice, Choice]] | None = None
    for f in single:
        dec = _pick([pools.eval_decode(ctx, f.shape, f.memory)], rate, req)
        pre = _pick([pools.eval_prefill(ctx, f.shape, f.memory, dec.ev)], rate, req) if dec else None
        if dec is None or pre is None:
            continue
        used = nodes_needed([Pool("prefill", f.shape, pre.instances), Pool("decode", f.shape, dec.instances)],
                            req.gpus_per_node)
        key = (rate is None and dec.ev.batch < MIN_USEFUL_BATCH, pre.gpus + dec.gpus, used, dec.ev.at_capacity.tpot)
        if used <= req.node_budget and (best is None or key < best[0]):
            best = (key, (pre, dec))
    if best is not None:
        return best[1]
    decodes = [pools.eval_decode(ctx, f.shape, f.memory) for f in single]
    if not any(e.capacity > 0 for e in decodes):
        return slo_error("decode", decodes, req)
    return PlanError(
        f"no single-node shape serves both LMCache P/D pools within the SLOs and {flag} {req.node_budget} "
        "(prefill and decode must share one TP size)",
        hint=f"relax the SLOs, raise {flag}, or use --kv-connector NixlConnector (pools of different shapes)",
    )


def _stalls(agg: Choice | PlanError | None, dis_gpus: int, req: PlanRequest) -> bool:
    """On a GPU tie, disaggregation still pays when aggregated inter-token gaps with a prefill chunk in the
    step exceed the TPOT SLO: the mean TPOT meets it, the tail does not."""
    slo = req.workload.tpot_slo
    return isinstance(agg, Choice) and agg.gpus == dis_gpus and slo is not None and agg.ev.stall > slo


def _fill_aggregated(choice: Choice, req: PlanRequest) -> Choice:
    """`--nodes N`: add replicas until the N nodes are full."""
    n = choice.instances
    while nodes_needed([Pool("serve", choice.ev.shape, n + 1)], req.gpus_per_node) <= req.node_budget:
        n += 1
    return Choice(choice.ev, n)


def _fill_disaggregated(pre: Choice, dec: Choice, req: PlanRequest) -> tuple[Choice, Choice]:
    """`--nodes N`: grow whichever pool has less total capacity, while the nodes hold it."""
    p, d = pre.instances, dec.instances

    def fits(pi: int, di: int) -> bool:
        return nodes_needed(
            [Pool("prefill", pre.ev.shape, pi), Pool("decode", dec.ev.shape, di)], req.gpus_per_node
        ) <= req.node_budget

    while True:
        order = ["p", "d"] if p * pre.ev.capacity <= d * dec.ev.capacity else ["d", "p"]
        for which in order:
            if which == "p" and fits(p + 1, d):
                p += 1
                break
            if which == "d" and fits(p, d + 1):
                d += 1
                break
        else:
            return Choice(pre.ev, p), Choice(dec.ev, d)


def _role(ctx: Context, choice: Choice, op: OperatingPoint, req: PlanRequest) -> Role:
    ev = choice.ev
    seqs = ev.batch_cap if ev.role == "prefill" else max(1, math.ceil(ev.batch))
    return Role(
        name=ev.role,
        shape=ev.shape,
        instances=choice.instances,
        nodes_per_instance=ev.shape.nodes(req.gpus_per_node),
        memory=ev.memory,
        max_num_seqs=seqs,
        capacity_rps=ev.capacity,
        batch_at_capacity=ev.batch,
        prefill=ev.prefill,
        decode_capacity=ctx.step(ev.shape, max(1.0, ev.batch)),
        decode_idle=ctx.step(ev.shape, 1),
        op=op,
        kv_transfer=ev.kv_transfer,
        expert_parallel=req.model.is_moe and ev.shape.tp > 1,
        stall=ev.stall,
    )


def solve(req: PlanRequest) -> Plan:
    from llmctl.plan import explain  # explain reads Plan; imported here to keep module graph acyclic

    _check(req)
    wdtype, kvdtype = dtypes(req)
    max_len = max_model_len(req)
    fits, tried = shapes.fitting_shapes(
        req.model, req.gpu, req.gpus_per_node, req.node_budget, wdtype, kvdtype, max_len, req.tp, req.pp
    )
    if not fits:
        from llmctl.plan.suggest import no_fit_error

        raise no_fit_error(req, wdtype, kvdtype, max_len, tried)
    ctx = Context(req.model, req.gpu, req.gpus_per_node, wdtype, kvdtype, req.workload)
    rate = req.workload.rate
    connector = connector_for_engine(req.engine, req.kv_connector, disaggregated=req.disaggregate == "on")
    notes: list[str] = []

    agg = _aggregated(ctx, fits, req) if req.disaggregate != "on" else None
    dis = None
    if req.disaggregate == "on" or (req.disaggregate == "auto" and rate is not None):
        dis = _disaggregated(ctx, fits, req)
    agg_gpus = agg.gpus if isinstance(agg, Choice) else None
    dis_gpus = sum(c.gpus for c in dis) if isinstance(dis, tuple) else None

    if req.disaggregate == "off":
        if isinstance(agg, PlanError):
            raise agg
        decision = Decision("aggregated", "--disaggregate off", agg_gpus, None)
    elif req.disaggregate == "on":
        if isinstance(dis, PlanError):
            raise dis
        decision = Decision("disaggregated", "--disaggregate on", None, dis_gpus)
    elif rate is None:
        if isinstance(agg, PlanError):
            raise agg
        decision = Decision("aggregated", "no --rate: one aggregated pool; pass --rate to weigh disaggregation", agg_gpus)
    elif dis_gpus is not None and (agg_gpus is None or dis_gpus < agg_gpus or _stalls(agg, dis_gpus, req)):
        if agg_gpus is None:
            why = "aggregated cannot meet the SLOs"
        elif dis_gpus < agg_gpus:
            why = f"{dis_gpus} GPUs < {agg_gpus} aggregated"
        else:
            assert isinstance(agg, Choice)
            why = (f"same {dis_gpus} GPUs, and aggregated decode steps that carry a prefill chunk take "
                   f"{fmt_duration(agg.ev.stall)}, over the TPOT SLO")
        decision = Decision("disaggregated", f"disaggregation pays: {why}", agg_gpus, dis_gpus)
    elif agg_gpus is not None:
        why = "disaggregated cannot meet the SLOs" if dis_gpus is None else f"{agg_gpus} GPUs <= {dis_gpus} disaggregated"
        decision = Decision("aggregated", f"disaggregation does not pay: {why}", agg_gpus, dis_gpus)
    else:
        raise agg if isinstance(agg, PlanError) else PlanError("no plan fits")

    if decision.mode == "disaggregated":
        assert isinstance(dis, tuple)
        connector = connector_for_engine(req.engine, req.kv_connector, disaggregated=True)
        pre, dec = dis
        if req.nodes is not None:
            pre, dec = _fill_disaggregated(pre, dec, req)
        dec_op = pools.operate_decode(ctx, dec.ev, rate / dec.instances if rate else None)
        handoff = pre.ev.kv_transfer + dec_op.tpot
        pre_op = pools.operate_prefill(pre.ev, rate / pre.instances if rate else None, handoff)
        roles = (_role(ctx, pre, pre_op, req), _role(ctx, dec, dec_op, req))
        if connector == lmcache.CONNECTOR:
            lmcache.check_buffers(roles[1].memory)
        capacity = min(pre.instances * pre.ev.capacity, dec.instances * dec.ev.capacity)
        ttft, tpot = pre_op.ttft, dec_op.tpot
    else:
        assert isinstance(agg, Choice)
        if req.kv_connector and connector is None:
            notes.append(f"--kv-connector {req.kv_connector} applies to disaggregated plans; this plan is aggregated")
        choice = _fill_aggregated(agg, req) if req.nodes is not None else agg
        op = pools.operate_aggregated(ctx, choice.ev, rate / choice.instances if rate else None)
        roles = (_role(ctx, choice, op, req),)
        capacity = choice.instances * choice.ev.capacity
        ttft, tpot = op.ttft, op.tpot

    placements, nodes = place([Pool(r.name, r.shape, r.instances) for r in roles], req.gpus_per_node)
    served = rate if rate is not None else capacity
    plan = Plan(
        request=req,
        mode=decision.mode,
        roles=roles,
        placements=tuple(placements),
        nodes=nodes,
        weight_dtype=wdtype,
        kv_dtype=kvdtype,
        max_model_len=max_len,
        kv_connector=connector if decision.mode == "disaggregated" or connector == "LMCacheConnectorV1" else None,
        decision=decision,
        expected=Expected(
            ttft=ttft,
            tpot=tpot,
            requests_per_s=served,
            output_tokens_per_s=served * req.workload.osl,
            capacity_rps=capacity,
        ),
        notes=tuple(notes),
    )
    return replace(plan, steps=tuple(explain.build_steps(plan)))


__all__ = ["dtypes", "max_model_len", "memory", "solve"]
