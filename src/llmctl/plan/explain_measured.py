"""`--format explain` lines for shapes whose speeds came from `--profile`: every such number says so, with
the file it came from and how it was read off the measurements (measured, interpolated, extrapolated)."""

from __future__ import annotations

from llmctl.plan import memory
from llmctl.plan.measured import ShapeSpeeds
from llmctl.plan.perf_measured import MeasuredFactory
from llmctl.plan.types import Plan, Role, Step
from llmctl.plan.units import fmt_duration as fd

TAG = "(measured)"


def speeds_of(plan: Plan, role: Role) -> ShapeSpeeds | None:
    factory = plan.request.perf_model
    return factory.speeds.of(role.shape) if isinstance(factory, MeasuredFactory) else None


def replace_steps(plan: Plan, r: Role, steps: list[Step]) -> list[Step]:
    """The role's roofline speed lines, with those a profile measured swapped for the measured ones."""
    s = speeds_of(plan, r)
    if s is None:
        return steps
    measured = {m.label: m for m in perf_steps(plan, r, s)}
    return [measured.get(step.label, step) for step in steps]


def perf_steps(plan: Plan, r: Role, s: ShapeSpeeds) -> list[Step]:
    w = plan.request.workload
    tag = f"[{r.name}] "
    src = f"profile {', '.join(s.sources)}, {s.shape}"
    out: list[Step] = []
    if r.name in ("serve", "prefill") and s.prefill is not None:
        out += [
            Step("prefill", tag + "latency (one request)", f"{fd(r.prefill.latency)} {TAG}",
                 f"TTFT of a request alone, {s.prefill.how(w.isl)}; {src}"),
            Step("prefill", tag + "service time (instance busy)", f"{fd(r.prefill.service)} {TAG}",
                 f"measured latency / PP {r.shape.pp} (a request alone keeps the engine busy that long)"),
        ]
    if r.name in ("serve", "decode") and s.decode is not None:
        idle, cap = r.decode_idle, r.decode_capacity
        out += [
            Step("decode", tag + "TPOT at batch 1", f"{fd(idle.time)} {TAG}", f"{s.decode.how(1)}; {src}"),
            Step("decode", tag + "batch at capacity", f"{r.batch_at_capacity:.3g}",
                 f"largest batch within KV ({r.memory.max_seqs}), max-num-seqs ({memory.MAX_NUM_SEQS} per engine), the largest "
                 f"batch measured ({s.decode.max_batch:.2f})" + (f", TPOT SLO {fd(w.tpot_slo)}" if w.tpot_slo else "")
                 + (f", TTFT SLO {fd(w.ttft_slo)}" if w.ttft_slo and r.name == "serve" else "")),
            Step("decode", tag + f"step time at batch {r.batch_at_capacity:.3g}", f"{fd(cap.time)} {TAG}",
                 f"{s.decode.how(max(r.batch_at_capacity, 1))}; measured at an average context of "
                 f"{s.decode.context:,.0f} tokens (this workload: {w.decode_context:,.0f})"),
        ]
        if r.name == "serve":
            chunk = min(w.isl, memory.MAX_NUM_BATCHED_TOKENS)
            out.append(Step("decode", tag + "inter-token gap with a prefill chunk", f"{fd(r.stall)} {TAG}",
                            f"step time + measured prefill time of one {chunk}-token chunk"))
    return out


def assumption_steps(plan: Plan) -> list[Step]:
    factory = plan.request.perf_model
    if not isinstance(factory, MeasuredFactory):
        return []
    m = factory.speeds
    out = [Step("assumptions", "measured model", f"{m.model} on {m.gpu}",
                "the endpoint's model name and the --gpu label of llmctl bench; KV hand-off times stay the roofline's")]
    for s in m.shapes:
        pre = f"prefill at ISL {s.prefill.span}" if s.prefill else "no prefill"
        dec = (f"decode at batch {', '.join(f'{b:.2f}' for b in s.decode.batch)}" if s.decode else "no decode")
        out.append(Step("assumptions", f"profile {s.shape}", ", ".join(s.sources), f"{pre}; {dec}"))
    return out
