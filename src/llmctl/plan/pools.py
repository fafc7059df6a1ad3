"""Sizing one pool of instances: how many requests per second one instance serves within the SLOs, and
where it runs at a given load. The Dynamo planner's question, answered with closed forms.

Aggregated instance at decode batch B (each request costs OSL decode steps shared by B sequences plus its
own prefill service time S):   lambda(B) = B / (OSL x t_step(B) + B x S),   rho = lambda x S,
TPOT = t_step(B) / (1 - rho),   TTFT = prefill latency + M/D/1 wait(rho, S) + t_step(B) x prefill chunks.
Disaggregated decode:  lambda(B) = B / (OSL x t_step(B)), TPOT = t_step(B).
Disaggregated prefill: lambda(rho) = rho / S, TTFT = prefill latency + wait(rho, S) + KV transfer + t_step.
All three grow monotonically with B or rho, so the most an instance serves is found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llmctl.plan import memory, perf
from llmctl.plan.memory import MemoryBreakdown, Shape
from llmctl.plan.perf import DecodeStep, PerfModel, Prefill
from llmctl.plan.perf_measured import MeasuredPerf
from llmctl.plan.profiles import GpuProfile, ModelProfile, ceil_div
from llmctl.plan.types import OperatingPoint, Workload

MIN_BATCH = 1e-3
"""Smallest average batch searched: an instance idle 99.9% of the time still counts as serving."""


@dataclass(frozen=True)
class Context:
    """What every evaluation shares: the speed model (model on GPU, dtypes, engine) and the workload."""

    perf: PerfModel
    workload: Workload

    @property
    def model(self) -> ModelProfile:
        return self.perf.inputs.model

    @property
    def gpu(self) -> GpuProfile:
        return self.perf.inputs.gpu

    @property
    def kvdtype(self) -> str:
        return self.perf.inputs.kvdtype

    def step(self, shape: Shape, batch: float) -> DecodeStep:
        return self.perf.decode_step(shape, batch, self.workload.decode_context)

    def prefill(self, shape: Shape) -> Prefill:
        return self.perf.prefill(shape, self.workload.isl)

    @property
    def prefill_chunks(self) -> int:
        return ceil_div(self.workload.isl, memory.MAX_NUM_BATCHED_TOKENS)


@dataclass(frozen=True)
class Eval:
    """One shape evaluated for one role. `capacity` 0 means the SLOs cannot be met by this shape."""

    role: str
    shape: Shape
    memory: MemoryBreakdown
    prefill: Prefill
    batch_cap: int  # sequences KV memory and MAX_NUM_SEQS allow
    batch: float  # the largest average batch within the SLOs (0: none; < 1 at light load)
    capacity: float  # requests/s per instance within the SLOs
    idle: OperatingPoint  # batch 1, no queue: the best latency this shape gives
    at_capacity: OperatingPoint
    kv_transfer: float = 0.0
    stall: float = 0.0  # aggregated: a decode step that also carries a full prefill chunk

    def instances_for(self, rate: float | None) -> int:
        if rate is None or rate <= 0:
            return 1
        return max(1, math.ceil(rate / self.capacity - 1e-9))


def _largest(ok: Callable[[float], bool], hi: int) -> float:
    """Largest batch b in (0, hi] with ok(b), for ok monotone (true then false); 0 when none.

    Batch is a time average (Little's law), so below one sequence it is fractional: a light-load instance.
    Above one it is rounded down to whole sequences, the number the engine's --max-num-seqs takes."""
    if hi < 1 or not ok(MIN_BATCH):
        return 0.0
    if ok(hi):
        return float(hi)
    lo, top = MIN_BATCH, float(hi)
    for _ in range(60):
        mid = (lo + top) / 2
        if ok(mid):
            lo = mid
        else:
            top = mid
    return float(math.floor(lo)) if lo >= 1 else lo


def _solve_rate(rate_of: Callable[[float], float], target: float, hi: float) -> float:
    """Batch b in (0, hi] with rate_of(b) = target (rate_of increasing); hi when target is out of reach."""
    if rate_of(hi) <= target:
        return hi
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if rate_of(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


def batch_cap(mem: MemoryBreakdown) -> int:
    """Sequences the instance runs at once: KV memory, and --max-num-seqs per engine (per DP rank)."""
    return min(mem.max_seqs, memory.MAX_NUM_SEQS * mem.dp)


def decode_cap(ctx: Context, shape: Shape, mem: MemoryBreakdown) -> int:
    """`batch_cap`, and with measured speeds (`plan --profile`) no batch larger than one measured: the step
    time of a batch never measured is a guess."""
    cap = batch_cap(mem)
    limit = ctx.perf.batch_limit(shape) if isinstance(ctx.perf, MeasuredPerf) else None
    return cap if limit is None else min(cap, limit)


# -- aggregated ---------------------------------------------------------------------------------------


def _agg_point(ctx: Context, shape: Shape, pre: Prefill, batch: float) -> OperatingPoint:
    w = ctx.workload
    t = ctx.step(shape, batch).time
    lam = batch / (w.osl * t + batch * pre.service)
    rho = lam * pre.service
    tpot = t / (1 - rho) if rho < 1 else math.inf
    ttft = pre.latency + perf.md1_wait(rho, pre.service) + t * ctx.prefill_chunks
    return OperatingPoint(rate=lam, batch=batch, ttft=ttft, tpot=tpot, utilization=rho)


def _within(ctx: Context, op: OperatingPoint, *, check_rho: bool = True) -> bool:
    w = ctx.workload
    if check_rho and op.utilization > perf.MAX_UTILIZATION:
        return False
    if w.tpot_slo is not None and op.tpot > w.tpot_slo:
        return False
    return w.ttft_slo is None or op.ttft <= w.ttft_slo


def eval_aggregated(ctx: Context, shape: Shape, mem: MemoryBreakdown) -> Eval:
    pre = ctx.prefill(shape)
    cap = decode_cap(ctx, shape, mem)
    best = _largest(lambda b: _within(ctx, _agg_point(ctx, shape, pre, b)), cap)
    t1 = ctx.step(shape, 1).time
    idle = OperatingPoint(rate=0.0, batch=1, ttft=pre.latency + t1 * ctx.prefill_chunks, tpot=t1, utilization=0.0)
    at_cap = _agg_point(ctx, shape, pre, best) if best else idle
    chunk = ctx.perf.prefill(shape, min(ctx.workload.isl, memory.MAX_NUM_BATCHED_TOKENS))
    stall = ctx.step(shape, max(best, 1)).time + chunk.compute_s
    return Eval("serve", shape, mem, pre, cap, best, at_cap.rate if best else 0.0, idle, at_cap, stall=stall)


def operate_aggregated(ctx: Context, ev: Eval, rate: float | None) -> OperatingPoint:
    if rate is None or not ev.batch:
        return ev.at_capacity
    pre = ev.prefill
    b = _solve_rate(lambda x: _agg_point(ctx, ev.shape, pre, x).rate, rate, float(ev.batch))
    return _agg_point(ctx, ev.shape, pre, b)


# -- disaggregated decode -------------------------------------------------------------------------------


def _decode_point(ctx: Context, shape: Shape, batch: float) -> OperatingPoint:
    t = ctx.step(shape, batch).time
    return OperatingPoint(rate=batch / (ctx.workload.osl * t), batch=batch, ttft=0.0, tpot=t, utilization=0.0)


def eval_decode(ctx: Context, shape: Shape, mem: MemoryBreakdown) -> Eval:
    pre = ctx.prefill(shape)
    cap = decode_cap(ctx, shape, mem)
    slo = ctx.workload.tpot_slo
    best = _largest(lambda b: slo is None or ctx.step(shape, b).time <= slo, cap)
    idle = _decode_point(ctx, shape, 1)
    at_cap = _decode_point(ctx, shape, best) if best else idle
    return Eval("decode", shape, mem, pre, cap, best, at_cap.rate if best else 0.0, idle, at_cap)


def operate_decode(ctx: Context, ev: Eval, rate: float | None) -> OperatingPoint:
    if rate is None or not ev.batch:
        return ev.at_capacity
    b = _solve_rate(lambda x: _decode_point(ctx, ev.shape, x).rate, rate, float(ev.batch))
    return _decode_point(ctx, ev.shape, b)


# -- disaggregated prefill ------------------------------------------------------------------------------


def _prefill_point(pre: Prefill, rho: float, handoff: float) -> OperatingPoint:
    ttft = pre.latency + perf.md1_wait(rho, pre.service) + handoff
    return OperatingPoint(rate=rho / pre.service, batch=0.0, ttft=ttft, tpot=0.0, utilization=rho)


def eval_prefill(ctx: Context, shape: Shape, mem: MemoryBreakdown, decode: Eval) -> Eval:
    """Prefill pool sized against the decode pool it feeds: TTFT includes the KV hand-off to a decode
    instance and the decode step that emits the first token there."""
    pre = ctx.prefill(shape)
    transfer = ctx.perf.kv_transfer(decode.shape, ctx.workload.isl)
    handoff = transfer + decode.at_capacity.tpot
    slo = ctx.workload.ttft_slo
    slack = math.inf if slo is None else slo - pre.latency - handoff
    if slack < 0:
        rho = 0.0
    elif math.isinf(slack):
        rho = perf.MAX_UTILIZATION
    else:
        rho = min(perf.MAX_UTILIZATION, 2 * slack / (pre.service + 2 * slack))
    idle = _prefill_point(pre, 0.0, handoff)
    at_cap = _prefill_point(pre, rho, handoff) if rho > 0 else idle
    capacity = rho / pre.service if rho > 0 else 0.0
    return Eval("prefill", shape, mem, pre, batch_cap(mem), 1 if rho > 0 else 0, capacity, idle, at_cap, transfer)


def operate_prefill(ev: Eval, rate: float | None, handoff: float) -> OperatingPoint:
    if rate is None or not ev.capacity:
        return ev.at_capacity
    rho = min(rate * ev.prefill.service, ev.at_capacity.utilization)
    return _prefill_point(ev.prefill, rho, handoff)
