"""Published deployments held against the planner: inputs, published numbers and source in
data/plan/references/*.yaml; what llmctl predicts for the same shape and load; and the shape llmctl itself
would choose for the same inputs. docs/planner.md's "published vs predicted" table is `table_markdown()`, and a
test checks that the two agree, so the table cannot go stale.

Workload kinds (how the reference was measured, and so how it is predicted):
- concurrency: a closed loop of C clients (`vllm bench serve --max-concurrency C`): B ≈ C sequences decode,
  each request's prefill interleaves with them;
- saturation: every prompt sent at once (`--request-rate inf`): the engine runs at its largest batch (KV
  memory at the benchmark's mean context, or max-num-seqs); throughput is the instance's capacity;
- prefill / decode: one disaggregated pool measured alone (LMSYS): prefill tokens per second per node, or
  decode tokens per second per node at a fixed batch and KV length;
- disaggregated: prefill and decode pools together at a measured request rate (llm-d's P/D guide): each pool's
  operating point from the solver's own pool functions (`pools.eval_decode`, `operate_decode`, `eval_prefill`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any

from llmctl.errors import LlmctlError
from llmctl.plan import data, kv, memory, pools
from llmctl.plan.catalog import find_catalog, load_gpu
from llmctl.plan.memory import Shape
from llmctl.plan.perf import PerfInputs, Roofline
from llmctl.plan.hfconfig import profile_from_config
from llmctl.plan.profiles import ModelProfile
from llmctl.plan.quant import quant_from_config
from llmctl.plan.solve import solve
from llmctl.plan.types import PlanRequest, Workload

TARGET = 0.30
"""Issue #14's target: every prediction within ±30% of its published figure."""

METRICS = {
    "ttft_ms": "TTFT ms",
    "tpot_ms": "TPOT ms",
    "output_tok_s": "output tok/s",
    "total_tok_s": "total tok/s",
    "prefill_tok_s_per_node": "prefill tok/s/node",
    "decode_tok_s_per_node": "decode tok/s/node",
    "e2e_ms": "E2E ms",
}


@dataclass(frozen=True)
class Reference:
    key: str
    title: str
    source: str
    engine: str
    engine_version: str
    model: ModelProfile
    gpu: str
    gpus_per_node: int
    shape: Shape  # the prefill pool's shape for a disaggregated reference
    instances: int
    kind: str  # concurrency | saturation | prefill | decode | disaggregated
    isl: float
    osl: float
    published: dict[str, float]
    concurrency: int = 0
    prompts: int = 0
    batch_per_gpu: int = 0
    max_model_len: int = 0
    rate: float = 0.0  # requests/s the benchmark achieved (disaggregated)
    decode_shape: Shape | None = None  # disaggregated: the decode pool
    decode_instances: int = 0
    calibrates: tuple[str, ...] = ()  # data/plan/perf constants this row was used to set
    features: frozenset[str] = frozenset()  # tuned kernels the deployment enabled (deepgemm, deepep, ...)
    shape_note: str = ""  # why llmctl's own choice differs, when it does
    miss_note: str = ""  # why a prediction misses the target, when one does
    note: str = ""

    @property
    def gpus(self) -> int:
        decode = self.decode_shape.gpus * self.decode_instances if self.decode_shape else 0
        return self.shape.gpus * self.instances + decode

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.gpus / self.gpus_per_node))


@dataclass(frozen=True)
class Row:
    ref: Reference
    predicted: dict[str, float]
    planned: str  # the shape llmctl chooses for the same inputs, or why it cannot
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def within_target(self) -> bool:
        return all(abs(e) <= TARGET for e in self.errors.values())


def _model(doc: dict[str, Any]) -> ModelProfile:
    entry = find_catalog(str(doc["model"]))
    if entry is None:
        raise LlmctlError(f"reference {doc['key']}: no catalog model {doc['model']!r}")
    profile = entry.profile()
    q = doc.get("quantization_config")
    if q:  # a published quantized variant of a catalog model (its quantization_config only differs)
        profile = replace(profile, quant=quant_from_config({"quantization_config": q}),
                          serve_id=str(doc.get("serve_id", profile.serve_id)))
    if doc.get("config"):
        profile = profile_from_config(doc["config"], name=doc["key"], serve_id=doc["key"], source="reference")
    return profile


def _shape(s: dict[str, Any]) -> Shape:
    return Shape(int(s.get("tp", 1)), int(s.get("pp", 1)), int(s.get("dp", 1)), bool(s.get("ep", False)))


def _reference(doc: dict[str, Any]) -> Reference:
    s, w, dec = doc["shape"], doc["workload"], doc.get("decode") or {}
    return Reference(
        key=doc["key"], title=doc["title"], source=doc["source"], engine=doc["engine"],
        engine_version=str(doc["engine_version"]), model=_model(doc), gpu=doc["gpu"],
        gpus_per_node=int(doc.get("gpus_per_node", 8)),
        shape=_shape(s),
        instances=int(doc.get("instances", 1)), kind=w["kind"], isl=float(w["isl"]), osl=float(w.get("osl", 1)),
        published={k: float(v) for k, v in doc["published"].items()},
        concurrency=int(w.get("concurrency", 0)), prompts=int(w.get("prompts", 0)),
        batch_per_gpu=int(w.get("batch_per_gpu", 0)), max_model_len=int(w.get("max_model_len", 0)),
        rate=float(w.get("rate", 0)), decode_shape=_shape(dec["shape"]) if dec else None,
        decode_instances=int(dec.get("instances", 0)),
        calibrates=tuple(doc.get("calibrates", ())), shape_note=str(doc.get("shape_note", "")),
        miss_note=str(doc.get("miss_note", "")),
        features=frozenset(doc.get("features", ())),
        note=str(doc.get("note", "")),
    )


@functools.cache
def references() -> tuple[Reference, ...]:
    return tuple(_reference(data.read_yaml("references", f)) for f in data.list_dir("references")
                 if f.endswith(".yaml"))


def _context(ref: Reference) -> pools.Context:
    wdtype = ref.model.native_dtype
    inputs = PerfInputs(ref.model, load_gpu(ref.gpu), ref.gpus_per_node, wdtype, "bf16", ref.engine,
                        features=ref.features)
    w = Workload(isl=max(1, round(ref.isl)), osl=max(1, round(ref.osl)), rate=ref.rate or None)
    return pools.Context(Roofline(inputs), w)


def _batch_cap(ref: Reference, ctx: pools.Context) -> float:
    """Sequences one instance runs at once: KV memory at the mean context in flight, and max-num-seqs."""
    m, gpu = ref.model, ctx.gpu
    max_len = ref.max_model_len or m.max_position_embeddings
    mem = memory.memory_breakdown(m, gpu, ref.shape, m.native_dtype, "bf16", max_len)
    per_seq = kv.sequence_bytes(m, ref.shape.tp, ref.shape.pp, "bf16", ref.isl + ref.osl / 2, windowed=True)
    by_kv = ref.shape.dp * max(0.0, mem.kv_free) / per_seq
    return min(by_kv, memory.MAX_NUM_SEQS * ref.shape.dp)


def _closed_loop(ref: Reference, ctx: pools.Context) -> dict[str, float]:
    """C clients per instance: B = C x decode share of each request's time; fixed point of TTFT and TPOT."""
    c = ref.concurrency / ref.instances
    pre = ctx.prefill(ref.shape)
    b = float(c)
    for _ in range(50):
        op = pools._agg_point(ctx, ref.shape, pre, max(b, 1e-3))
        step = ctx.step(ref.shape, max(b, 1.0)).time
        ttft = pre.latency + step + pools.perf.md1_wait(op.utilization, pre.service)
        lam = c / (ttft + ref.osl * op.tpot)
        b = lam * ref.osl * op.tpot
    return {"ttft_ms": ttft * 1e3, "tpot_ms": op.tpot * 1e3, "output_tok_s": lam * ref.osl * ref.instances,
            "total_tok_s": lam * (ref.isl + ref.osl) * ref.instances}


def _saturated(ref: Reference, ctx: pools.Context) -> dict[str, float]:
    b = min(_batch_cap(ref, ctx), (ref.prompts or 10**9) / ref.instances)
    pre = ctx.prefill(ref.shape)
    op = pools._agg_point(ctx, ref.shape, pre, b)
    return {"tpot_ms": op.tpot * 1e3, "output_tok_s": op.rate * ref.osl * ref.instances,
            "total_tok_s": op.rate * (ref.isl + ref.osl) * ref.instances}


def _disaggregated(ref: Reference, ctx: pools.Context) -> dict[str, float]:
    """Both pools at the measured rate, split evenly over each pool's instances, through the solver's own pool
    functions: decode batch by Little's law, TTFT = prefill + M/D/1 wait + KV hand-off + first decode step.
    Unlike `operate_prefill`, the prefill load is not capped at the planner's MAX_UTILIZATION (the solver sizes
    pools to stay below it; a reference's pool is given): a load at or past the modelled capacity is an infinite
    TTFT, and the table says so."""
    assert ref.decode_shape is not None
    m, gpu, max_len = ref.model, ctx.gpu, ref.max_model_len or ref.model.max_position_embeddings

    def mem(shape: Shape) -> memory.MemoryBreakdown:
        return memory.memory_breakdown(m, gpu, shape, m.native_dtype, "bf16", max_len)

    dec_ev = pools.eval_decode(ctx, ref.decode_shape, mem(ref.decode_shape))
    dec = pools.operate_decode(ctx, dec_ev, ref.rate / ref.decode_instances)
    pre_ev = pools.eval_prefill(ctx, ref.shape, mem(ref.shape), dec_ev)
    rho = ref.rate / ref.instances * pre_ev.prefill.service
    pre = pools._prefill_point(pre_ev.prefill, rho, pre_ev.kv_transfer + dec.tpot)
    return {"ttft_ms": pre.ttft * 1e3, "tpot_ms": dec.tpot * 1e3, "e2e_ms": (pre.ttft + (ref.osl - 1) * dec.tpot) * 1e3}


def predict(ref: Reference) -> dict[str, float]:
    ctx = _context(ref)
    if ref.kind == "concurrency":
        out = _closed_loop(ref, ctx)
    elif ref.kind == "saturation":
        out = _saturated(ref, ctx)
    elif ref.kind == "prefill":
        nodes = ref.shape.gpus / ref.gpus_per_node
        out = {"prefill_tok_s_per_node": ref.isl / ctx.prefill(ref.shape).service / nodes}
    elif ref.kind == "decode":
        nodes = ref.shape.gpus / ref.gpus_per_node
        batch = ref.batch_per_gpu * ref.shape.gpus
        step = ctx.perf.decode_step(ref.shape, batch, ref.isl)
        out = {"decode_tok_s_per_node": batch / step.time / nodes, "tpot_ms": step.time * 1e3}
    elif ref.kind == "disaggregated":
        out = _disaggregated(ref, ctx)
    else:
        raise LlmctlError(f"reference {ref.key}: unknown workload kind {ref.kind!r}")
    return {k: v for k, v in out.items() if k in ref.published}


def planned_shape(ref: Reference) -> str:
    """What `llmctl plan` chooses for the reference's model, GPUs and load (its measured request rate)."""
    rate = ref.rate or None
    if "output_tok_s" in ref.published:
        rate = ref.published["output_tok_s"] / ref.osl
    elif "total_tok_s" in ref.published:
        rate = ref.published["total_tok_s"] / (ref.isl + ref.osl)
    if ref.kind in ("prefill", "decode"):
        return "one pool alone (see note)"
    pd = ref.kind == "disaggregated"
    req = PlanRequest(model=ref.model, gpu=load_gpu(ref.gpu), gpus_per_node=ref.gpus_per_node,
                      workload=Workload(isl=max(1, round(ref.isl)), osl=max(1, round(ref.osl)), rate=rate),
                      max_nodes=ref.nodes, engine=ref.engine, disaggregate="on" if pd else "off")
    try:
        plan = solve(req)
    except LlmctlError as exc:
        return f"no plan: {exc}"
    if pd:
        pre, dec = plan.role("prefill"), plan.role("decode")
        return _pools(pre.shape, pre.instances, dec.shape, dec.instances)
    r = plan.roles[0]
    return f"{r.instances} x {r.shape}" if r.instances > 1 else str(r.shape)


def _pools(pre: Shape, pre_n: int, dec: Shape, dec_n: int) -> str:
    return f"prefill {pre_n} x {pre} + decode {dec_n} x {dec}"


def rows() -> list[Row]:
    out = []
    for ref in references():
        pred = predict(ref)
        errors = {k: pred[k] / ref.published[k] - 1 for k in pred}
        out.append(Row(ref, pred, planned_shape(ref), errors))
    return out


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "∞"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"


def reference_shape(ref: Reference) -> str:
    if ref.decode_shape is not None:
        return _pools(ref.shape, ref.instances, ref.decode_shape, ref.decode_instances)
    return f"{ref.instances} x {ref.shape}" if ref.instances > 1 else str(ref.shape)


def _inputs(ref: Reference) -> str:
    gpus = f"{ref.gpus}x {ref.gpu}"
    if ref.kind == "prefill":
        return f"{gpus}; {ref.isl:g}-token prompts; prefill pool alone"
    if ref.kind == "decode":
        return f"{gpus}; {ref.batch_per_gpu} seqs/GPU at {ref.isl:g} tokens of KV; decode pool alone"
    if ref.kind == "disaggregated":
        return f"{gpus}; ISL {ref.isl:g} / OSL {ref.osl:g}; {ref.rate:g} req/s"
    load = f"concurrency {ref.concurrency}" if ref.kind == "concurrency" else f"{ref.prompts} prompts at once"
    return f"{gpus}; ISL {ref.isl:g} / OSL {ref.osl:g}; {load}"


def table_markdown(rs: list[Row] | None = None) -> str:
    """The docs table: a line per published metric; a reference's first line names it."""
    rs = rows() if rs is None else rs
    head = ("| # | deployment (source) | engine | inputs | shape: reference / llmctl | metric | published | predicted "
            "| error |\n|---|---|---|---|---|---|---:|---:|---:|\n")
    lines = []
    for i, r in enumerate(rs, 1):
        ref = r.ref
        same = "same" if r.planned == reference_shape(ref) else r.planned
        cal = " (c)" if ref.calibrates else ""
        first = [f"{i}", f"[{ref.title}]({ref.source}){cal}", f"{ref.engine} {ref.engine_version}", _inputs(ref),
                 f"{reference_shape(ref)} / {same}"]
        for j, k in enumerate(ref.published):
            mark = "" if abs(r.errors[k]) <= TARGET else " ✗"
            err = "∞" if math.isinf(r.errors[k]) else f"{r.errors[k]:+.0%}"
            cells = first if j == 0 else [""] * len(first)
            lines.append("| " + " | ".join(cells + [METRICS[k], _fmt(ref.published[k]), _fmt(r.predicted[k]),
                                                    err + mark]) + " |")
    return head + "\n".join(lines) + "\n"


def notes_markdown(rs: list[Row] | None = None) -> str:
    """Per row: why llmctl's shape differs and what the row calibrated, when either applies."""
    rs = rows() if rs is None else rs
    out = []
    for i, r in enumerate(rs, 1):
        bits = []
        if r.planned != reference_shape(r.ref) or r.ref.shape_note:
            bits.append(f"shape: {r.ref.shape_note or 'no reason recorded'}")
        if not r.within_target:
            bits.append(f"outside ±{TARGET:.0%}: {r.ref.miss_note or 'no reason recorded'}")
        if r.ref.calibrates:
            bits.append("calibrates " + ", ".join(f"`{c}`" for c in r.ref.calibrates) + " (not an independent check)")
        if r.ref.note:
            bits.append(r.ref.note)
        if bits:
            out.append(f"{i}. " + "; ".join(bits))
    return "\n".join(out) + ("\n" if out else "")
