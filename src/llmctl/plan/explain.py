"""`--format explain`: every number of a plan next to the formula (with the values substituted) that gave it,
so a reader can redo the arithmetic. `build_steps` is pure; `renderables` builds rich tables for the CLI.
"""

from __future__ import annotations

from typing import Any

from llmctl.plan import lmcache, memory, perf
from llmctl.plan.memory import kv_bytes_per_token, weight_bytes_total
from llmctl.plan.profiles import DTYPE_BYTES
from llmctl.plan.shapes import valid_tps
from llmctl.plan.solve import MIN_USEFUL_BATCH
from llmctl.plan.types import Plan, Role, Step
from llmctl.plan.units import fmt_bytes as fb
from llmctl.plan.units import fmt_count
from llmctl.plan.units import fmt_duration as fd

TOPICS = {
    "model": "Model",
    "memory": "Memory per GPU",
    "parallelism": "Parallelism",
    "prefill": "Prefill (compute-bound)",
    "decode": "Decode (bandwidth-bound)",
    "pools": "Pools",
    "expected": "Expected",
    "assumptions": "Assumptions",
}


def _model_steps(plan: Plan) -> list[Step]:
    m = plan.request.model
    pc = m.params()
    wb = DTYPE_BYTES[plan.weight_dtype]
    kvb = DTYPE_BYTES[plan.kv_dtype]
    s = [
        Step("model", "architecture",
             f"{m.architecture}: {m.num_layers} layers, hidden {m.hidden_size}, {m.num_attention_heads} heads, "
             f"{m.num_kv_heads} KV heads x {m.head_dim}, vocab {m.vocab_size:,}", f"from {m.source}: {m.serve_id}"),
        Step("model", "parameters", fmt_count(pc.total),
             "layers x (attention + MLP/experts + norms) + embeddings" + (" (as the GGUF states)" if m.parameter_count_override else "")),
    ]
    if m.is_moe:
        s.append(Step("model", "active parameters per token", fmt_count(pc.active),
                      f"{m.experts_per_token} of {m.num_experts} routed experts"
                      + (" + shared experts" if m.shared_expert_intermediate_size else "")))
    s.append(Step("model", f"weights ({plan.weight_dtype})", fb(weight_bytes_total(m, plan.weight_dtype)),
                  f"{fmt_count(pc.total - pc.embedding - pc.norms)} linear params x {wb} B + "
                  f"{fmt_count(pc.embedding + pc.norms)} embedding/norm params x 2 B"))
    if m.is_mla:
        formula = f"{m.num_layers} layers x ({m.kv_lora_rank} latent + {m.qk_rope_head_dim} rope) x {kvb} B (MLA)"
    else:
        formula = f"{m.num_layers} layers x 2 x {m.num_kv_heads} KV heads x {m.head_dim} head dim x {kvb} B"
    s.append(Step("model", f"KV cache per token ({plan.kv_dtype})", fb(kv_bytes_per_token(m, plan.kv_dtype)), formula))
    w = plan.request.workload
    s.append(Step("model", "max model length", f"{plan.max_model_len:,} tokens",
                  f"ISL {w.isl} + OSL {w.osl} rounded up to a multiple of 1024"))
    return s


def _memory_steps(plan: Plan, r: Role) -> list[Step]:
    mem, sh, m = r.memory, r.shape, plan.request.model
    gpu = plan.request.gpu
    tag = f"[{r.name}] "
    if sh.pp == 1:
        wformula = f"{fb(weight_bytes_total(m, plan.weight_dtype))} / TP {sh.tp}"
    else:
        pc = m.params()
        wformula = (f"(ceil({m.num_layers}/{sh.pp}) layers x {fmt_count(pc.max_layer)} params x "
                    f"{DTYPE_BYTES[plan.weight_dtype]} B + {fmt_count(m.vocab_size * m.hidden_size)} embedding x 2 B)"
                    f" / TP {sh.tp}: the heaviest of {sh.pp} stages")
    per_layer = m.kv_elements_per_token_per_layer * DTYPE_BYTES[plan.kv_dtype]
    kvf = (f"ceil({m.num_layers}/{sh.pp}) layers x {per_layer} B"
           + ("" if m.is_mla else f" / TP {sh.tp}") + (" (MLA latent is not split by TP)" if m.is_mla else ""))
    return [
        Step("memory", tag + "budget", fb(mem.budget),
             f"{fb(gpu.memory_bytes)} ({gpu.name}) x gpu-memory-utilization {memory.GPU_MEMORY_UTILIZATION}"),
        Step("memory", tag + "weights", fb(mem.weights), wformula),
        Step("memory", tag + "activations", fb(mem.activations),
             f"{memory.MAX_NUM_BATCHED_TOKENS} batched tokens x (2 hidden + (q + kv + 2 x mlp) / TP) x 2 B "
             f"+ FP32 logits for {memory.MAX_NUM_SEQS} rows"),
        Step("memory", tag + "runtime reserve", fb(mem.runtime), "CUDA graphs, NCCL buffers, sampler"),
        Step("memory", tag + "left for KV cache", fb(mem.kv_free), "budget - weights - activations - runtime"),
        Step("memory", tag + "KV per token on one GPU", fb(mem.kv_bytes_per_token), kvf),
        Step("memory", tag + "KV capacity per instance", f"{mem.kv_tokens:,} tokens",
             f"{fb(mem.kv_free)} / {fb(mem.kv_bytes_per_token)}"),
        Step("memory", tag + "concurrent sequences by KV", f"{mem.max_seqs:,}",
             f"{mem.kv_tokens:,} / {plan.max_model_len:,} max model length"),
    ]


def _parallel_steps(plan: Plan) -> list[Step]:
    req = plan.request
    m = req.model
    G = req.gpus_per_node
    node_budget = fb(memory.GPU_MEMORY_UTILIZATION * req.gpu.memory_bytes * G)
    weights = fb(weight_bytes_total(m, plan.weight_dtype))
    s = [Step("parallelism", "TP sizes allowed", ", ".join(map(str, valid_tps(m, G))),
              f"divide {G} GPUs per node, {m.num_attention_heads} attention heads and {m.num_kv_heads} KV heads")]
    for r in plan.roles:
        spans = r.nodes_per_instance
        if spans > 1:
            why = f"weights {weights} > {node_budget} usable on one node of {G}: PP across {spans} nodes"
        elif req.workload.rate is not None:
            why = "of the shapes that fit, the one serving the rate within the SLOs with the fewest GPUs in total"
        else:
            why = (f"the smallest shape that fits with KV for at least {MIN_USEFUL_BATCH} sequences "
                   "(or the largest batch the SLOs allow)")
        s.append(Step("parallelism", f"[{r.name}] instance", f"{r.shape} = {r.shape.gpus} GPUs on {spans} node(s)", why))
        if r.expert_parallel:
            s.append(Step("parallelism", f"[{r.name}] expert parallel", f"EP over the TP group ({r.shape.tp})",
                          f"{m.num_experts} experts spread across ranks instead of sliced; vLLM EP size = TP x DP"))
    return s


def _perf_steps(plan: Plan, r: Role) -> list[Step]:
    req, w = plan.request, plan.request.workload
    m, gpu, sh = req.model, req.gpu, r.shape
    tag = f"[{r.name}] "
    pre = r.prefill
    s: list[Step] = []
    if r.name in ("serve", "prefill"):
        s += [
            Step("prefill", tag + "FLOPs per request", f"{pre.flops / 1e12:.1f} TFLOP",
                 f"2 x {fmt_count(perf.matmul_params(m))} matmul params x {w.isl} + 2 x {m.num_layers} x {w.isl}^2 x "
                 f"{m.q_dim} (attention) + 2 x vocab x hidden"),
            Step("prefill", tag + "latency (one request)", fd(pre.latency),
                 f"{pre.flops / 1e12:.1f} TFLOP / (TP {sh.tp} x {pre.peak_flops / 1e12:.0f} TFLOP/s x MFU {perf.PREFILL_MFU})"
                 + (" + pipeline hops" if sh.pp > 1 else "")),
            Step("prefill", tag + "service time (pipelined)", fd(pre.service), f"latency compute / PP {sh.pp}"),
        ]
    if r.kv_transfer:
        s.append(Step("prefill", tag + "KV hand-off to decode", fd(r.kv_transfer),
                      f"{w.isl} tokens x KV per token per decode GPU / ({gpu.inter_node_bandwidth / 1e9:g} GB/s NIC x "
                      f"{perf.KV_TRANSFER_EFFICIENCY})"))
    if r.name in ("serve", "decode"):
        idle, cap = r.decode_idle, r.decode_capacity
        s += [
            Step("decode", tag + "TPOT at batch 1", fd(idle.time),
                 f"weights {fd(idle.weights_s)} + KV {fd(idle.kv_s)} + TP all-reduce {fd(idle.comm_s)}"
                 + (f" + PP hops {fd(idle.hops_s)}" if idle.hops_s else "")
                 + f"; weights = PP {sh.pp} x {fb(r.memory.weights)}"
                 + (" x experts touched" if m.is_moe else "")
                 + f" / ({gpu.hbm_bandwidth / 1e12:g} TB/s x {perf.DECODE_BW_EFFICIENCY})"),
            Step("decode", tag + "batch at capacity", f"{r.batch_at_capacity:.3g}",
                 f"largest batch within KV ({r.memory.max_seqs}), max-num-seqs ({memory.MAX_NUM_SEQS})"
                 + (f", TPOT SLO {fd(w.tpot_slo)}" if w.tpot_slo else "")
                 + (f", TTFT SLO {fd(w.ttft_slo)}" if w.ttft_slo and r.name == "serve" else "")),
            Step("decode", tag + f"step time at batch {r.batch_at_capacity:.3g}", fd(cap.time),
                 f"weights {fd(cap.weights_s)} + KV {fd(cap.kv_s)} (batch x {w.decode_context:g} avg context) "
                 f"+ comm {fd(cap.comm_s + cap.hops_s)}"),
        ]
        if r.name == "serve":
            s.append(Step("decode", tag + "inter-token gap with a prefill chunk", fd(r.stall),
                          f"step time + compute of one {min(w.isl, memory.MAX_NUM_BATCHED_TOKENS)}-token prefill chunk "
                          "(the tail that disaggregation removes)"))
        rate_formula = ("B / (OSL x t_step(B) + B x prefill service)" if r.name == "serve"
                        else "B / (OSL x t_step(B))")
        s.append(Step("decode", tag + "capacity per instance", f"{r.capacity_rps:.3f} req/s", rate_formula))
    elif r.name == "prefill":
        s.append(Step("prefill", tag + "capacity per instance", f"{r.capacity_rps:.3f} req/s",
                      f"rho / service, rho = min({perf.MAX_UTILIZATION}, 2 x TTFT slack / (service + 2 x slack))"))
    return s


def _pool_steps(plan: Plan) -> list[Step]:
    w = plan.request.workload
    d = plan.decision
    s = [Step("pools", "mode", plan.mode, d.reason)]
    if d.aggregated_gpus is not None or d.disaggregated_gpus is not None:
        s.append(Step("pools", "GPUs needed", f"aggregated {d.aggregated_gpus or '-'}, disaggregated "
                      f"{d.disaggregated_gpus or '-'}", "instances x GPUs per instance, each at its cheapest shape"))
    for r in plan.roles:
        formula = (f"ceil({w.rate:g} req/s / {r.capacity_rps:.3f})" if w.rate else "no --rate: one instance")
        if plan.request.nodes is not None:
            formula += f"; then filled to --nodes {plan.request.nodes}"
        s.append(Step("pools", f"[{r.name}] instances", f"{r.instances} x {r.shape.gpus} GPUs", formula))
    if plan.mode == "disaggregated":
        p, dd = plan.role("prefill"), plan.role("decode")
        s.append(Step("pools", "prefill : decode GPUs", f"{p.gpus} : {dd.gpus}",
                      "each pool sized for the rate on its own bottleneck (compute vs bandwidth)"))
        if lmcache.is_pd(plan):
            s += lmcache.explain_steps(plan)
    s.append(Step("pools", "nodes", f"{plan.nodes} x {plan.request.gpus_per_node} GPUs ({plan.gpus} used)",
                  "instances packed first-fit, largest first"))
    return s


def _expected_steps(plan: Plan) -> list[Step]:
    e, w = plan.expected, plan.request.workload
    load = f"at {w.rate:g} req/s" if w.rate else "at capacity"
    ttft_f = ("prefill latency + M/D/1 wait rho x S / (2 (1 - rho)) + first decode step"
              if plan.mode == "aggregated" else "prefill latency + M/D/1 wait + KV hand-off + first decode step")
    return [
        Step("expected", f"TTFT {load}", fd(e.ttft), ttft_f + (f" (SLO {fd(w.ttft_slo)})" if w.ttft_slo else "")),
        Step("expected", f"TPOT {load}", fd(e.tpot),
             ("t_step(B) / (1 - prefill busy share)" if plan.mode == "aggregated" else "t_step(B), B by Little's law")
             + (f" (SLO {fd(w.tpot_slo)})" if w.tpot_slo else "")),
        Step("expected", "output throughput", f"{e.output_tokens_per_s:,.0f} tok/s", f"{e.requests_per_s:.2f} req/s x OSL {w.osl}"),
        Step("expected", "capacity within SLOs", f"{e.capacity_rps:.2f} req/s", "instances x capacity per instance"),
    ]


def _assumption_steps() -> list[Step]:
    return [
        Step("assumptions", "prefill MFU", str(perf.PREFILL_MFU), "share of dense peak FLOP/s a whole-model prefill reaches"),
        Step("assumptions", "decode HBM efficiency", str(perf.DECODE_BW_EFFICIENCY), "share of peak bandwidth decode kernels sustain"),
        Step("assumptions", "link efficiency", str(perf.LINK_EFFICIENCY), "NVLink/PCIe/NIC share reached by collectives"),
        Step("assumptions", "KV transfer efficiency", str(perf.KV_TRANSFER_EFFICIENCY), "NIC share reached by NIXL/Mooncake"),
        Step("assumptions", "max prefill utilization", str(perf.MAX_UTILIZATION), "queues are kept below this busy share"),
        Step("assumptions", "routing", "uniform", "MoE experts touched per step: 1 - (1 - k/E)^tokens"),
    ]


def build_steps(plan: Plan) -> list[Step]:
    steps = _model_steps(plan)
    for r in plan.roles:
        steps += _memory_steps(plan, r)
    steps += _parallel_steps(plan)
    for r in plan.roles:
        steps += _perf_steps(plan, r)
    steps += _pool_steps(plan) + _expected_steps(plan) + _assumption_steps()
    return steps


def text_lines(plan: Plan) -> list[tuple[str, str]]:
    """(style, line) pairs: a title, then per topic its steps as `label  value` and `    = formula`."""
    req = plan.request
    title = (f"{req.model.serve_id} on {req.gpu.name}: {plan.mode}, {plan.nodes} node(s), {plan.gpus} GPUs, "
             f"{plan.weight_dtype} weights, {plan.engine} {plan.engine_version}")
    out = [("bold", title)]
    for topic, title in TOPICS.items():
        rows = [s for s in plan.steps if s.topic == topic]
        if not rows:
            continue
        out.append(("", ""))
        out.append(("bold underline", title))
        width = max(len(s.label) for s in rows)
        for s in rows:
            out.append(("", f"  {s.label.ljust(width)}  {s.value}"))
            if s.formula:
                out.append(("dim", f"  {' ' * width}    = {s.formula}"))
    for note in plan.notes:
        out.append(("yellow", f"note: {note}"))
    return out


def renderables(plan: Plan) -> list[Any]:
    """Rich Text lines (markup-free, so labels like [serve] print as written). Imported lazily by the CLI."""
    from rich.text import Text

    return [Text(line, style=style, no_wrap=False) for style, line in text_lines(plan)]
