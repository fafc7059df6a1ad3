"""`--format explain` for speed: prefill and decode of each role with every term of the roofline, and the
constants behind them (each efficiency and overhead with the source data/plan/perf cites)."""

from __future__ import annotations

from llmctl.plan import memory, perf
from llmctl.plan.perf import PerfInputs, Roofline, perf_model_for
from llmctl.plan.perfdata import perf_data
from llmctl.plan.types import Plan, Role, Step
from llmctl.plan.units import fmt_bytes as fb
from llmctl.plan.units import fmt_count
from llmctl.plan.units import fmt_duration as fd

ASSUMPTIONS = (
    ("compute.gemm.{act}", "prefill matmul efficiency ({act})", "share of the {act} dense peak whole-model linears reach"),
    ("compute.weight_only_factor", "weight-only dequantization factor", "weight-only formats (AWQ/GPTQ/MXFP4 on "
                                                                         "Hopper) multiply the BF16 efficiency by this"),
    ("compute.moe_factor_{act}", "grouped expert GEMM factor ({act})", "routed-expert GEMMs reach this share of the "
                                                                        "dense efficiency"),
    ("compute.attention", "attention compute efficiency", "share of BF16 peak attention kernels reach"),
    ("memory.weights", "decode weight-read efficiency", "share of peak HBM bandwidth streaming dense weights"),
    ("memory.experts_{fmt}", "expert-read efficiency ({fmt})", "share of peak HBM bandwidth the MoE kernel for {fmt} "
                                                               "experts reaches"),
    ("memory.kv", "decode KV-read efficiency", "share of peak HBM bandwidth paged attention reaches"),
    ("latency.kernel_floor_s", "small-kernel floor", "time a tiny kernel takes inside a CUDA graph"),
    ("latency.fused_moe_floor_s", "fused-MoE GEMM floor", "time one fused-MoE GEMM takes at batch 1"),
    ("latency.request_s", "per-request overhead", "API server work per request (tokenize, template, first detokenize)"),
    ("latency.step_s", "engine step overhead", "scheduling, input preparation and sampling per engine step"),
    ("links.collective_efficiency", "collective link efficiency", "NVLink/PCIe/NIC share NCCL reaches"),
    ("links.all_to_all_efficiency", "EP all-to-all efficiency", "link share MoE dispatch/combine reach"),
    ("links.kv_transfer_efficiency", "KV transfer efficiency", "NIC share NIXL/Mooncake reach"),
)


def _perf(plan: Plan) -> perf.PerfModel:
    req = plan.request
    inputs = PerfInputs(req.model, req.gpu, req.gpus_per_node, plan.weight_dtype, plan.kv_dtype, req.engine)
    return perf_model_for(inputs, req.perf_model)


def _prefill_steps(plan: Plan, r: Role, model: perf.PerfModel) -> list[Step]:
    req, w = plan.request, plan.request.workload
    m, sh, pre = req.model, r.shape, r.prefill
    tag = f"[{r.name}] "
    eff = ""
    if isinstance(model, Roofline):
        d, q = model.data, model.quant
        eff = (f"matmuls at {d.gemm(q.act)} of {pre.peak_flops / 1e12:.0f} TFLOP/s ({q.act})"
               + (f", experts x {d.get('compute.moe_factor_' + q.act)}" if m.is_moe else "")
               + f", attention at {d.get('compute.attention')} of BF16 peak")
    return [
        Step("prefill", tag + "FLOPs per request", f"{pre.flops / 1e12:.1f} TFLOP",
             f"2 x {fmt_count(perf.matmul_params(m))} matmul params x {w.isl} + 4 x {m.q_dim} x attended query-key "
             "pairs (sliding layers cap them at the window) + 2 x vocab x hidden"),
        Step("prefill", tag + "latency (one request)", fd(pre.latency),
             f"compute {fd(pre.compute_s)} on its {sh.tp} TP GPU(s)" + (" (experts over the whole group)" if sh.dp > 1 else "")
             + f" + comm {fd(pre.comm_s)} + per-chunk overheads" + (" + pipeline hops" if sh.pp > 1 else "")
             + (f"; {eff}" if eff else "")),
        Step("prefill", tag + "service time (instance busy)", fd(pre.service),
             f"the request's work spread over all {sh.gpus} GPUs (stages pipelined, DP ranks in parallel)"),
    ]


def _decode_steps(plan: Plan, r: Role, model: perf.PerfModel) -> list[Step]:
    req, w = plan.request, plan.request.workload
    m, gpu, sh = req.model, req.gpu, r.shape
    tag = f"[{r.name}] "
    idle, cap = r.decode_idle, r.decode_capacity
    rate = ""
    if isinstance(model, Roofline):
        d = model.data
        rate = (f"; weights / ({gpu.hbm_bandwidth / 1e12:g} TB/s x {d.get('memory.weights')})"
                + (f", experts touched x {model._expert_bw()}" if m.is_moe else "")
                + f", KV x {d.get('memory.kv')}; overhead = layers x small kernels x {fd(d.get('latency.kernel_floor_s'))}"
                + f" + step {fd(d.get('latency.step_s'))}")
    s = [
        Step("decode", tag + "TPOT at batch 1", fd(idle.time),
             f"weights {fd(idle.weights_s)} + KV {fd(idle.kv_s)} + comm {fd(idle.comm_s + idle.hops_s)} + "
             f"overhead {fd(idle.overhead_s)}; reads {fb(sum(memory.decode_read_bytes(m, sh, plan.weight_dtype)))} "
             f"per GPU{' (experts: only those routed to)' if m.is_moe else ''}" + rate),
        Step("decode", tag + "batch at capacity", f"{r.batch_at_capacity:.3g}",
             f"largest batch within KV ({r.memory.max_seqs}), max-num-seqs ({memory.MAX_NUM_SEQS} per engine)"
             + (f", TPOT SLO {fd(w.tpot_slo)}" if w.tpot_slo else "")
             + (f", TTFT SLO {fd(w.ttft_slo)}" if w.ttft_slo and r.name == "serve" else "")),
        Step("decode", tag + f"step time at batch {r.batch_at_capacity:.3g}", fd(cap.time),
             f"weights {fd(cap.weights_s)} + KV {fd(cap.kv_s)} (batch x {w.decode_context:g} avg context) "
             f"+ comm {fd(cap.comm_s + cap.hops_s)} + overhead {fd(cap.overhead_s)}"
             + (f"; DP ranks run in lockstep, each with batch / {sh.dp}" if sh.dp > 1 else "")),
    ]
    if r.name == "serve":
        s.append(Step("decode", tag + "inter-token gap with a prefill chunk", fd(r.stall),
                      f"step time + compute of one {min(w.isl, memory.MAX_NUM_BATCHED_TOKENS)}-token prefill chunk "
                      "(the tail that disaggregation removes)"))
    formula = "B / (OSL x t_step(B) + B x prefill service)" if r.name == "serve" else "B / (OSL x t_step(B))"
    s.append(Step("decode", tag + "capacity per instance", f"{r.capacity_rps:.3f} req/s", formula))
    return s


def perf_steps(plan: Plan, r: Role) -> list[Step]:
    model = _perf(plan)
    w, gpu = plan.request.workload, plan.request.gpu
    s: list[Step] = []
    if r.name in ("serve", "prefill"):
        s += _prefill_steps(plan, r, model)
    if r.kv_transfer:
        s.append(Step("prefill", f"[{r.name}] KV hand-off to decode", fd(r.kv_transfer),
                      f"{w.isl} tokens x KV per token per decode GPU / ({gpu.inter_node_bandwidth / 1e9:g} GB/s NIC x "
                      "KV transfer efficiency)"))
    if r.name in ("serve", "decode"):
        s += _decode_steps(plan, r, model)
    elif r.name == "prefill":
        s.append(Step("prefill", f"[{r.name}] capacity per instance", f"{r.capacity_rps:.3f} req/s",
                      f"rho / service, rho = min({perf.MAX_UTILIZATION}, 2 x TTFT slack / (service + 2 x slack))"))
    return s


def assumption_steps(plan: Plan) -> list[Step]:
    model = _perf(plan)
    s = [Step("assumptions", "speed model", model.label, "a measured profile replaces it through PlanRequest.perf_model")]
    if isinstance(model, Roofline):
        d = perf_data(plan.request.gpu.arch, plan.request.engine)
        act, fmt = model.quant.act, model.quant.weight_format
        for key, label, why in ASSUMPTIONS:
            if ("moe" in key or "experts" in key) and not plan.request.model.is_moe:
                continue
            if "weight_only" in key and not (model.quant.quantized and act == "bf16"):
                continue
            e = d.entry(key.format(act=act, fmt=fmt))
            s.append(Step("assumptions", label.format(act=act, fmt=fmt), f"{e.value:g}",
                          f"{why.format(act=act, fmt=fmt)}; {e.source}"))
    s += [
        Step("assumptions", "max prefill utilization", str(perf.MAX_UTILIZATION), "queues are kept below this busy share"),
        Step("assumptions", "routing", "uniform", "MoE experts touched per step: 1 - (1 - k/E)^tokens"),
    ]
    return s
