"""`solve(PlanRequest) -> Plan`: choose dtypes, instance shapes, aggregated or disaggregated pools, pool
sizes and placement, or raise a PlanError that says what would fit instead.

Pure: no I/O beyond reading package data through the profile loaders. The order of decisions is the
order `--format explain` prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmctl.errors import PlanError
from llmctl.plan import explain, lmcache, pd_rules, pools, shapes
from llmctl.plan.placement import Pool, nodes_needed, place
from llmctl.plan.pools import Context, Eval
from llmctl.plan.prepare import dtypes, max_model_len, setup
from llmctl.plan.profiles import ModelProfile
from llmctl.plan.shapes import MIN_USEFUL_BATCH
from llmctl.plan.suggest import budget_error, slo_error
from llmctl.plan.types import (
    Decision,
    Expected,
    OperatingPoint,
    Plan,
    PlanRequest,
    Role,
)
from llmctl.plan.units import fmt_duration
from llmctl.plan.validate_vllm import connector_for_engine


@dataclass(frozen=True)
class Choice:
    ev: Eval
    instances: int

    @property
    def gpus(self) -> int:
        return self.ev.shape.gpus * self.instances


def _ranked(evals: list[Eval], rate: float | None, req: PlanRequest) -> list[Choice]:
    """Choices that serve `rate` within the SLOs and the node budget, best first: fewest GPUs (ties: fewer nodes,
    lower TPOT); without a rate, the smallest instance whose batch reaches MIN_USEFUL_BATCH first."""
    scored: list[tuple[tuple[float, ...], int, Choice]] = []
    for i, ev in enumerate(evals):
        if ev.capacity <= 0:
            continue
        choice = Choice(ev, ev.instances_for(rate))
        used = nodes_needed([Pool(ev.role, ev.shape, choice.instances)], req.gpus_per_node)
        if used > req.node_budget:
            continue
        if rate is None:  # no load to size for: the smallest instance that batches usefully, then the fastest
            key = (ev.batch < MIN_USEFUL_BATCH, choice.gpus, -ev.capacity, ev.at_capacity.tpot)
        else:
            key = (choice.gpus, used, ev.at_capacity.tpot, ev.at_capacity.ttft)
        scored.append((key, i, choice))
    return [c for _, _, c in sorted(scored, key=lambda t: (t[0], t[1]))]


def _pick(evals: list[Eval], rate: float | None, req: PlanRequest) -> Choice | None:
    ranked = _ranked(evals, rate, req)
    return ranked[0] if ranked else None


def _aggregated(ctx: Context, fits: list[shapes.Fit], req: PlanRequest) -> Choice | PlanError:
    evals = [pools.eval_aggregated(ctx, f.shape, f.memory) for f in fits]
    choice = _pick(evals, req.workload.rate, req)
    if choice:
        return choice
    if not any(e.capacity > 0 for e in evals):
        return slo_error("aggregated", evals, req)
    return budget_error("aggregated", evals, req)


def _rule_error(model: ModelProfile, pre_fits: list[shapes.Fit], dec_fits: list[shapes.Fit],
                rules: tuple[pd_rules.Rule, ...], req: PlanRequest) -> PlanError | None:
    """When the connector's rules allow no prefill/decode pair at all, the one-line error naming the rule that the
    first pair breaks (with --tp/--pp/--prefill-tp/--decode-tp forced, that is the forced pair)."""
    first: tuple[pd_rules.Rule, pd_rules.Pair] | None = None
    for p in pre_fits:
        for d in dec_fits:
            pair = pd_rules.pair(model, p.shape, d.shape, req.gpus_per_node)
            rule = pd_rules.violation(rules, pair)
            if rule is None:
                return None
            first = first or (rule, pair)
    assert first is not None
    rule, pair = first
    forced = [f for f, v in (("--tp", req.tp), ("--pp", req.pp), ("--prefill-tp", req.prefill_tp),
                             ("--decode-tp", req.decode_tp)) if v is not None]
    how = f"other {'/'.join(forced)}" if forced else "a model, --dtype or --gpu whose shapes"
    return PlanError(rule.line(str(pair)), hint=f"use {how} the rule allows, or another --kv-connector")


def _disaggregated(ctx: Context, pre_fits: list[shapes.Fit], dec_fits: list[shapes.Fit], req: PlanRequest
                   ) -> tuple[Choice, Choice] | PlanError:
    """Decode pool first (its best shape that some rule-allowed prefill shape can feed), then the prefill pool among
    the shapes the connector's rules allow next to it."""
    try:
        connector = connector_for_engine(req.engine, req.kv_connector, disaggregated=True)
    except PlanError as exc:
        return exc
    if not pre_fits or not dec_fits:
        role, tp = ("prefill", req.prefill_tp) if not pre_fits else ("decode", req.decode_tp)
        return PlanError(f"no shape fits the {role} pool" + (f" at --{role}-tp {tp}" if tp else ""))
    rules = pd_rules.rules_for(req.engine, connector)
    blocked = _rule_error(ctx.model, pre_fits, dec_fits, rules, req)
    if blocked is not None:
        return blocked
    if req.engine == "vllm" and connector == lmcache.CONNECTOR:
        return _disaggregated_one_shape(ctx, pre_fits, dec_fits, req, rules)
    decodes = [pools.eval_decode(ctx, f.shape, f.memory) for f in dec_fits]
    ranked = _ranked(decodes, req.workload.rate, req)
    if not ranked:
        if not any(e.capacity > 0 for e in decodes):
            return slo_error("decode", decodes, req)
        return budget_error("decode pool", decodes, req)
    allowed: list[shapes.Fit] = []
    for dec in ranked:
        allowed = [f for f in pre_fits
                   if pd_rules.allows(rules, pd_rules.pair(ctx.model, f.shape, dec.ev.shape, req.gpus_per_node))]
        if allowed:
            break
    else:
        dec = ranked[0]
        rule = pd_rules.violation(rules, pd_rules.pair(ctx.model, pre_fits[0].shape, dec.ev.shape, req.gpus_per_node))
        assert rule is not None
        return PlanError(rule.line(f"any prefill shape to the decode shapes that serve the load ({dec.ev.shape})"),
                         hint="relax the SLOs, raise the node budget, or use another --kv-connector")
    prefills = [pools.eval_prefill(ctx, f.shape, f.memory, dec.ev) for f in allowed]
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


def _disaggregated_one_shape(ctx: Context, pre_fits: list[shapes.Fit], dec_fits: list[shapes.Fit],
                             req: PlanRequest, rules: tuple[pd_rules.Rule, ...]) -> tuple[Choice, Choice] | PlanError:
    """LMCache P/D: prefill rank r writes its KV slice to decode rank r, so both pools take one shape, on one node
    (PP 1; the lmcache-* rules). The cheapest pair over those shapes (ties: fewer nodes, lower TPOT); each role
    with its own memory (the receiver keeps a larger buffer outside vLLM)."""
    by_shape = {f.shape: f for f in dec_fits}
    single = [(f, by_shape[f.shape]) for f in pre_fits if f.shape in by_shape and
              pd_rules.allows(rules, pd_rules.pair(ctx.model, f.shape, f.shape, req.gpus_per_node))]
    flag = "--nodes" if req.nodes is not None else "--max-nodes"
    if not single:
        fits = pre_fits + dec_fits
        return PlanError(
            f"LMCache P/D needs every instance on one node (PP 1), and {req.model.name} needs at least "
            f"{min(f.shape.gpus for f in fits)} GPUs over {min(f.shape.nodes(req.gpus_per_node) for f in fits)} nodes",
            hint="use --kv-connector NixlConnector, --dtype fp8 or a larger --gpu",
        )
    rate = req.workload.rate
    best: tuple[tuple[float, ...], tuple[Choice, Choice]] | None = None
    for pf, df in single:
        dec = _pick([pools.eval_decode(ctx, df.shape, df.memory)], rate, req)
        pre = _pick([pools.eval_prefill(ctx, pf.shape, pf.memory, dec.ev)], rate, req) if dec else None
        if dec is None or pre is None:
            continue
        used = nodes_needed([Pool("prefill", pf.shape, pre.instances), Pool("decode", df.shape, dec.instances)],
                            req.gpus_per_node)
        key = (rate is None and dec.ev.batch < MIN_USEFUL_BATCH, pre.gpus + dec.gpus, used, dec.ev.at_capacity.tpot)
        if used <= req.node_budget and (best is None or key < best[0]):
            best = (key, (pre, dec))
    if best is not None:
        return best[1]
    decodes = [pools.eval_decode(ctx, df.shape, df.memory) for _, df in single]
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
    batch = ev.batch_cap if ev.role == "prefill" else max(1, math.ceil(ev.batch))
    seqs = max(1, math.ceil(batch / ev.shape.dp))  # --max-num-seqs is per engine, i.e. per DP rank
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
        expert_parallel=ev.shape.ep,
        stall=ev.stall,
    )


def _decide(agg: Choice | PlanError | None, dis: tuple[Choice, Choice] | PlanError | None,
            req: PlanRequest) -> Decision:
    rate = req.workload.rate
    agg_gpus = agg.gpus if isinstance(agg, Choice) else None
    dis_gpus = sum(c.gpus for c in dis) if isinstance(dis, tuple) else None
    if req.disaggregate == "off":
        if isinstance(agg, PlanError):
            raise agg
        return Decision("aggregated", "--disaggregate off", agg_gpus, None)
    if req.disaggregate == "on":
        if isinstance(dis, PlanError):
            raise dis
        return Decision("disaggregated", "--disaggregate on", None, dis_gpus)
    if rate is None:
        if isinstance(agg, PlanError):
            raise agg
        return Decision("aggregated", "no --rate: one aggregated pool; pass --rate to weigh disaggregation", agg_gpus)
    if dis_gpus is not None and (agg_gpus is None or dis_gpus < agg_gpus or _stalls(agg, dis_gpus, req)):
        if agg_gpus is None:
            why = "aggregated cannot meet the SLOs"
        elif dis_gpus < agg_gpus:
            why = f"{dis_gpus} GPUs < {agg_gpus} aggregated"
        else:
            assert isinstance(agg, Choice)
            why = (f"same {dis_gpus} GPUs, and aggregated decode steps that carry a prefill chunk take "
                   f"{fmt_duration(agg.ev.stall)}, over the TPOT SLO")
        return Decision("disaggregated", f"disaggregation pays: {why}", agg_gpus, dis_gpus)
    if agg_gpus is not None:
        why = "disaggregated cannot meet the SLOs" if dis_gpus is None else f"{agg_gpus} GPUs <= {dis_gpus} disaggregated"
        return Decision("aggregated", f"disaggregation does not pay: {why}", agg_gpus, dis_gpus)
    raise agg if isinstance(agg, PlanError) else PlanError("no plan fits")


def _disaggregated_roles(ctx: Context, dis: tuple[Choice, Choice], req: PlanRequest
                         ) -> tuple[tuple[Role, ...], float, float, float]:
    rate = req.workload.rate
    pre, dec = dis
    if req.nodes is not None:
        pre, dec = _fill_disaggregated(pre, dec, req)
    dec_op = pools.operate_decode(ctx, dec.ev, rate / dec.instances if rate else None)
    handoff = pre.ev.kv_transfer + dec_op.tpot
    pre_op = pools.operate_prefill(pre.ev, rate / pre.instances if rate else None, handoff)
    roles = (_role(ctx, pre, pre_op, req), _role(ctx, dec, dec_op, req))
    capacity = min(pre.instances * pre.ev.capacity, dec.instances * dec.ev.capacity)
    return roles, capacity, pre_op.ttft, dec_op.tpot


def _aggregated_roles(ctx: Context, agg: Choice, req: PlanRequest) -> tuple[tuple[Role, ...], float, float, float]:
    rate = req.workload.rate
    choice = _fill_aggregated(agg, req) if req.nodes is not None else agg
    op = pools.operate_aggregated(ctx, choice.ev, rate / choice.instances if rate else None)
    return (_role(ctx, choice, op, req),), choice.instances * choice.ev.capacity, op.ttft, op.tpot


def solve(req: PlanRequest) -> Plan:
    su = setup(req)
    rate = req.workload.rate
    connector = connector_for_engine(req.engine, req.kv_connector, disaggregated=req.disaggregate == "on")
    notes = list(su.notes)
    agg = _aggregated(*su.agg, req) if req.disaggregate != "on" and su.agg[1] else None
    dis = None
    if req.disaggregate == "on" or (req.disaggregate == "auto" and rate is not None):
        dis = _disaggregated(*su.dis, req)
    decision = _decide(agg, dis, req)
    if decision.mode == "disaggregated":
        assert isinstance(dis, tuple)
        connector = connector_for_engine(req.engine, req.kv_connector, disaggregated=True)
        roles, capacity, ttft, tpot = _disaggregated_roles(su.dis[0], dis, req)
    else:
        assert isinstance(agg, Choice)
        if req.kv_connector and connector is None:
            notes.append(f"--kv-connector {req.kv_connector} applies to disaggregated plans; this plan is aggregated")
        if req.prefill_tp or req.decode_tp:
            notes.append("--prefill-tp/--decode-tp apply to disaggregated plans; this plan is aggregated")
        roles, capacity, ttft, tpot = _aggregated_roles(su.agg[0], agg, req)
    placements, nodes = place([Pool(r.name, r.shape, r.instances) for r in roles], req.gpus_per_node)
    served = rate if rate is not None else capacity
    plan = Plan(
        request=req,
        mode=decision.mode,
        roles=roles,
        placements=tuple(placements),
        nodes=nodes,
        weight_dtype=su.wdtype,
        kv_dtype=su.kvdtype,
        max_model_len=su.max_len,
        kv_connector=connector if decision.mode == "disaggregated" or connector == "LMCacheConnectorV1" else None,
        decision=decision,
        expected=Expected(ttft=ttft, tpot=tpot, requests_per_s=served, output_tokens_per_s=served * req.workload.osl,
                          capacity_rps=capacity),
        notes=tuple(notes),
    )
    return replace(plan, steps=tuple(explain.build_steps(plan)))


__all__ = ["dtypes", "max_model_len", "solve"]
