"""`--format explain`: every number of a plan next to the formula (with the values substituted) that gave it,
so a reader can redo the arithmetic. `build_steps` is pure; `renderables` builds rich tables for the CLI.
"""

from __future__ import annotations

from typing import Any

from llmctl.plan import explain_measured, explain_perf, kv, lmcache, memory, pd_rules, role_settings, shapes
from llmctl.plan.memory import kv_bytes_per_token, plan_quant, role_bytes, weight_bytes_total
from llmctl.plan.profiles import DTYPE_BYTES
from llmctl.plan.shapes import MIN_USEFUL_BATCH
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
    "rules": "KV connector rules (prefill : decode)",
    "expected": "Expected",
    "assumptions": "Assumptions",
}


def _model_steps(plan: Plan) -> list[Step]:
    m = plan.request.model
    pc = m.params()
    q = plan_quant(m, plan.weight_dtype)
    rb = role_bytes(m, q)
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
    s.append(Step("model", "quantization", q.label + (" (declared by the checkpoint)" if q.declared else ""),
                  f"{q.detail}" + ("" if f"{q.weight_bits:g} bits" in q.detail else f"; {q.weight_bits:g} bits per weight")
                  if q.quantized else "16-bit checkpoint"))
    quantized = ("experts" if q.scope == "experts" else "attention + MLP/experts")
    s.append(Step("model", f"weights ({q.label})", fb(rb.total),
                  f"{quantized} at {q.weight_bits:g} bits = {fb(rb.attention + rb.mlp + rb.experts)}"
                  f" + embeddings/lm_head/norms/routers in 16-bit = {fb(rb.small + rb.embed + rb.head)}"
                  if q.quantized else
                  f"{fmt_count(pc.total - pc.embedding - pc.norms)} linear params x 2 B + "
                  f"{fmt_count(pc.embedding + pc.norms)} embedding/norm params x 2 B"))
    if m.is_mla:
        formula = f"{m.num_layers} layers x ({m.kv_lora_rank} latent + {m.qk_rope_head_dim} rope) x {kvb} B (MLA)"
    else:
        formula = f"{m.num_layers} layers x 2 x {m.num_kv_heads} KV heads x {m.head_dim} head dim x {kvb} B"
    if m.sliding_layers:
        formula += (f"; {m.sliding_layers} of {m.num_layers} layers slide over a {m.sliding_window}-token window "
                    "and keep only that much per sequence")
    s.append(Step("model", f"KV cache per token ({plan.kv_dtype})", fb(kv_bytes_per_token(m, plan.kv_dtype)), formula))
    w = plan.request.workload
    s.append(Step("model", "max model length", f"{plan.max_model_len:,} tokens",
                  f"ISL {w.isl} + OSL {w.osl} rounded up to a multiple of 1024"))
    return s


def _weight_formula(plan: Plan, r: Role) -> str:
    m, sh = plan.request.model, r.shape
    dense, experts = memory.weight_split(m, sh, plan.weight_dtype)
    where = "" if sh.pp == 1 else f" (the heaviest of {sh.pp} stages: ceil({m.num_layers}/{sh.pp}) layers + embedding)"
    if m.is_moe:
        return (f"non-expert {fb(dense)} (/ TP {sh.tp}, replicated over DP) + routed experts {fb(experts)} "
                f"(/ {sh.tp * sh.dp} GPUs){where}")
    if sh.pp == 1:
        return f"{fb(weight_bytes_total(m, plan.weight_dtype))} / TP {sh.tp}"
    pc, q = m.params(), plan_quant(m, plan.weight_dtype)
    return (f"(ceil({m.num_layers}/{sh.pp}) layers x {fmt_count(pc.max_layer)} params x {q.bytes_for('mlp'):g} B + "
            f"{fmt_count(m.vocab_size * m.hidden_size)} embedding x 2 B) / TP {sh.tp}: the heaviest of {sh.pp} stages")


def _kv_formula(plan: Plan, r: Role) -> str:
    m, sh = plan.request.model, r.shape
    per_layer = kv.per_layer_bytes(m, sh.tp, plan.kv_dtype)
    if m.is_mla:
        return f"ceil({m.num_layers}/{sh.pp}) layers x {per_layer} B (the MLA latent is not split by TP)"
    heads = kv.kv_heads_per_rank(m, sh.tp)
    rep = f"; TP {sh.tp} > {m.num_kv_heads} KV heads: each head is replicated on {sh.tp // m.num_kv_heads} ranks" \
        if sh.tp > m.num_kv_heads else ""
    return f"ceil({m.num_layers}/{sh.pp}) layers x 2 x {heads} KV head(s) per rank x {m.head_dim} x {DTYPE_BYTES[plan.kv_dtype]} B{rep}"


def _memory_steps(plan: Plan, r: Role) -> list[Step]:
    mem, m = r.memory, plan.request.model
    gpu = plan.request.gpu
    tag = f"[{r.name}] "
    seq = (f"{fb(mem.kv_seq_bytes)} per {plan.max_model_len:,}-token sequence"
           + (f" (sliding layers keep {m.sliding_window} tokens)" if m.sliding_layers and
              mem.kv_seq_bytes < mem.kv_bytes_per_token * plan.max_model_len else ""))
    return [
        Step("memory", tag + "budget", fb(mem.budget),
             f"{fb(gpu.memory_bytes)} ({gpu.name}) x gpu-memory-utilization {mem.utilization:g}" if plan.engine == "vllm"
             else f"{fb(gpu.memory_bytes)} ({gpu.name}) x {mem.utilization:g} usable (SGLang's own share: "
                  "mem-fraction-static below)"),
        Step("memory", tag + "weights", fb(mem.weights), _weight_formula(plan, r)),
        Step("memory", tag + "activations", fb(mem.activations),
             f"{memory.MAX_NUM_BATCHED_TOKENS} batched tokens x (2 hidden + (q + kv + 2 x mlp) / TP) x 2 B "
             f"+ FP32 logits for {memory.MAX_NUM_SEQS} rows"),
        Step("memory", tag + "runtime reserve", fb(mem.runtime),
             "CUDA graphs, NCCL buffers, sampler" + (" + expert-parallel all-to-all buffers" if r.shape.dp > 1 else "")),
        Step("memory", tag + "left for KV cache", fb(mem.kv_free), "budget - weights - activations - runtime"),
        Step("memory", tag + "KV per token on one GPU", fb(mem.kv_bytes_per_token), _kv_formula(plan, r)),
        Step("memory", tag + "KV capacity per instance", f"{mem.kv_tokens:,} tokens",
             f"{fb(mem.kv_free)} / ({seq}) x {plan.max_model_len:,}" + (f" x {r.shape.dp} DP ranks" if r.shape.dp > 1 else "")),
        Step("memory", tag + "concurrent sequences by KV", f"{mem.max_seqs:,}",
             f"{mem.kv_tokens:,} / {plan.max_model_len:,} max model length"),
    ]


def _shape_reason(plan: Plan, r: Role) -> str:
    req, m, G = plan.request, plan.request.model, plan.request.gpus_per_node
    node_budget = fb(memory.GPU_MEMORY_UTILIZATION * req.gpu.memory_bytes * G)
    weights = fb(weight_bytes_total(m, plan.weight_dtype))
    if r.nodes_per_instance > 1 and r.shape.dp == 1:
        how = "TP" if r.shape.tp > G else "PP"
        return f"weights {weights} > {node_budget} usable on one node of {G}: {how} across {r.nodes_per_instance} nodes"
    if req.workload.rate is not None:
        return "of the shapes that fit, the one serving the rate within the SLOs with the fewest GPUs in total"
    return (f"the smallest shape that fits with KV for at least {MIN_USEFUL_BATCH} sequences "
            "(or the largest batch the SLOs allow), then the one with the most capacity")


def _parallel_steps(plan: Plan) -> list[Step]:
    req = plan.request
    m = req.model
    G = req.gpus_per_node
    wide = shapes.multinode_tps(m, G, req.node_budget)
    s = [Step("parallelism", "TP sizes allowed", ", ".join(map(str, shapes.valid_tps(m, G) + wide)),
              f"divide {m.num_attention_heads} attention heads; divide the {m.num_kv_heads} KV heads or be a multiple "
              f"of them (then heads are replicated); inside a node of {G}, or whole nodes"
              + ("; whole quantization groups per slice" if m.quant.group_size else ""))]
    for r in plan.roles:
        spans = r.nodes_per_instance
        s.append(Step("parallelism", f"[{r.name}] instance", f"{r.shape} = {r.shape.gpus} GPUs on {spans} node(s)",
                      _shape_reason(plan, r)))
        if r.shape.dp > 1:
            s.append(Step("parallelism", f"[{r.name}] DP attention + EP",
                          f"{r.shape.dp} attention ranks x TP {r.shape.tp}, experts over EP {r.shape.ep_size}",
                          "each rank holds its own sequences' KV and the whole attention; MoE layers exchange tokens "
                          "between all ranks every step, so the group runs in lockstep and is priced as one instance"))
        elif r.expert_parallel:
            s.append(Step("parallelism", f"[{r.name}] expert parallel", f"EP over the TP group ({r.shape.tp})",
                          f"{m.num_experts} experts spread across ranks instead of sliced"))
    return s


def _perf_steps(plan: Plan, r: Role) -> list[Step]:
    return explain_measured.replace_steps(plan, r, explain_perf.perf_steps(plan, r))


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
        s += _rule_steps(plan)
        if lmcache.is_pd(plan):
            s += lmcache.explain_steps(plan)
    s.append(Step("pools", "nodes", f"{plan.nodes} x {plan.request.gpus_per_node} GPUs ({plan.gpus} used)",
                  "instances packed first-fit, largest first"))
    return s


def _rule_steps(plan: Plan) -> list[Step]:
    """Each topology rule of the connector, held against the chosen prefill and decode shapes (pd_rules)."""
    rules = pd_rules.rules_for(plan.engine, plan.kv_connector)
    pair = pd_rules.pair(plan.request.model, plan.role("prefill").shape, plan.role("decode").shape,
                         plan.request.gpus_per_node)
    engine = pd_rules.ENGINE_NAMES.get(plan.engine, plan.engine)
    head = Step("rules", "connector", f"{plan.kv_connector} ({engine} {plan.engine_version})",
                f"prefill {pair.prefill} : decode {pair.decode}, against the rules of data/plan/pd-rules.yaml; "
                "the solver pairs only shapes they allow")
    return [head] + [Step("rules", rid, verdict, why) for rid, verdict, why in pd_rules.explain(rules, pair)]


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


def build_steps(plan: Plan) -> list[Step]:
    steps = _model_steps(plan)
    for r in plan.roles:
        steps += _memory_steps(plan, r)
    steps += role_settings.explain_steps(plan)
    steps += _parallel_steps(plan)
    for r in plan.roles:
        steps += _perf_steps(plan, r)
    steps += _pool_steps(plan) + _expected_steps(plan) + explain_perf.assumption_steps(plan)
    steps += explain_measured.assumption_steps(plan)
    return steps


def text_lines(plan: Plan) -> list[tuple[str, str]]:
    """(style, line) pairs: a title, then per topic its steps as `label  value` and `    = formula`."""
    req = plan.request
    shown = req.model.name if req.model.serve_id.startswith("/") else req.model.serve_id  # not a pod's folder
    title = (f"{shown} on {req.gpu.name}: {plan.mode}, {plan.nodes} node(s), {plan.gpus} GPUs, "
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
