"""Speed: a roofline with measured efficiencies and fixed overheads, behind a `PerfModel` seam.

The solver asks a `PerfModel` three questions — a prefill's latency and service time, a decode step's time at a
batch, and the KV hand-off time — and never computes speed itself. `Roofline` answers them from the model's
arithmetic and the constants in data/plan/perf (each with its source); a measured profile (`llmctl bench`,
`plan --profile`) plugs in as another `PerfModel` through `PlanRequest.perf_model` (see `perf_model_for`).

Roofline, per GPU, for each kind of work: time = max(bytes / (HBM x e_mem), FLOPs / (peak x e_compute)); the
kinds add up (dense linears, routed experts, attention), plus communication (TP all-reduce, EP all-to-all, PP
hops) and fixed overheads (small kernels per layer x kernel floor, one engine step). docs/planner.md derives it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llmctl.plan import kv, memory
from llmctl.plan.memory import Shape, plan_quant
from llmctl.plan.perfdata import PerfData, perf_data
from llmctl.plan.profiles import GpuProfile, ModelProfile, ceil_div

MAX_UTILIZATION = 0.85
"""Highest busy fraction the planner loads a prefill queue to: M/D/1 waits grow as 1/(1-rho)."""


@dataclass(frozen=True)
class PerfInputs:
    """What every speed question shares: the model on the GPU, dtypes, engine, node size."""

    model: ModelProfile
    gpu: GpuProfile
    gpus_per_node: int
    wdtype: str
    kvdtype: str
    engine: str = "vllm"
    windowed: bool = True  # sliding-window layers keep only their window (vLLM's hybrid KV cache manager)
    features: frozenset[str] = frozenset()  # what a measured deployment enabled: deepgemm, deepep, async-scheduling


@dataclass(frozen=True)
class Prefill:
    flops: float
    latency: float  # one request alone: its DP rank's GPUs, all stages in turn, plus hops
    service: float  # instance time per request when busy (work spread over every GPU, stages pipelined)
    peak_flops: float
    compute_s: float = 0.0  # latency's compute part
    comm_s: float = 0.0  # latency's TP all-reduce and EP all-to-all part


@dataclass(frozen=True)
class DecodeStep:
    """Time for one decode step (one new token for each of `batch` sequences) and where it goes."""

    batch: float
    time: float
    weights_s: float
    kv_s: float
    comm_s: float
    hops_s: float
    overhead_s: float = 0.0  # small kernels per layer and the engine's per-step work


class PerfModel(Protocol):
    """What the solver needs to know about speed. Implemented by `Roofline`; a measured profile may replace it."""

    inputs: PerfInputs
    label: str

    def prefill(self, shape: Shape, isl: int) -> Prefill: ...

    def decode_step(self, shape: Shape, batch: float, context: float) -> DecodeStep: ...

    def kv_transfer(self, decode_shape: Shape, isl: int) -> float: ...


PerfModelFactory = Callable[[PerfInputs], PerfModel]


# -- FLOP arithmetic ---------------------------------------------------------------------------------


def matmul_params(model: ModelProfile) -> int:
    """Parameters a prompt token multiplies through: active parameters minus the embedding table (a lookup)
    and minus lm_head (logits are computed for the last token only)."""
    pc = model.params()
    return pc.active - pc.embedding


def dense_matmul_params(model: ModelProfile) -> float:
    """Matmul parameters outside the routed experts: attention, dense MLPs, shared experts, routers."""
    return matmul_params(model) - expert_flops_per_token(model) / 2.0


def _attended_pairs(model: ModelProfile, isl: int) -> float:
    """Query-key pairs of a causal prefill, summed over layers; sliding layers see at most `window` keys."""
    full_pairs = isl * isl / 2.0
    sliding = model.sliding_layers
    if not sliding:
        return model.num_layers * full_pairs
    w = model.sliding_window
    window_pairs = full_pairs if isl <= w else isl * w - w * w / 2.0
    return (model.num_layers - sliding) * full_pairs + sliding * window_pairs


def prefill_flops(model: ModelProfile, isl: int) -> float:
    """2 x matmul params x ISL + 4 x q_dim x attended pairs (QKᵀ and PV) + 2 x vocab x hidden (one logit row)."""
    linear = 2.0 * matmul_params(model) * isl
    attention = 4.0 * model.q_dim * _attended_pairs(model, isl)
    logits = 2.0 * model.vocab_size * model.hidden_size
    return linear + attention + logits


def expert_flops_per_token(model: ModelProfile) -> float:
    pc = model.params()
    return 2.0 * model.experts_per_token * pc.expert_each * (model.num_layers - model.dense_layers) if model.is_moe else 0.0


def attention_decode_flops(model: ModelProfile, context: float) -> float:
    """One token's attention over its context, all layers: 4 x heads x head_dim x context (QKᵀ and PV), or for
    MLA with absorbed projections 2 x heads x (2 x kv_lora_rank + rope) x context; sliding layers cap context."""
    if model.is_mla:
        per_key = 2.0 * model.num_attention_heads * (2 * model.kv_lora_rank + model.qk_rope_head_dim)
    else:
        per_key = 4.0 * model.num_attention_heads * model.head_dim
    sliding = model.sliding_layers
    keys = (model.num_layers - sliding) * context + sliding * min(context, model.sliding_window or context)
    return per_key * keys


def experts_touched(model: ModelProfile, tokens: float) -> float:
    """Expected share of routed experts a step reads: 1 - (1 - k/E)^tokens (uniform routing)."""
    if not model.is_moe:
        return 1.0
    miss = 1.0 - model.experts_per_token / model.num_experts
    return 1.0 - miss ** max(tokens, 1.0)


def md1_wait(rho: float, service: float) -> float:
    """Mean queueing delay of an M/D/1 queue (Poisson arrivals, fixed service): rho x S / (2 (1 - rho))."""
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return float("inf")
    return rho * service / (2.0 * (1.0 - rho))


# -- the roofline ------------------------------------------------------------------------------------


class Roofline:
    """Speed from the model's arithmetic and data/plan/perf's efficiencies (see the module docstring)."""

    def __init__(self, inputs: PerfInputs) -> None:
        self.inputs = inputs
        self.data: PerfData = perf_data(inputs.gpu.arch, inputs.engine)
        self.quant = plan_quant(inputs.model, inputs.wdtype)
        self.label = f"roofline, data/plan/perf/{inputs.gpu.arch}.yaml and engines.yaml ({inputs.engine})"

    # links ---------------------------------------------------------------------------------------
    def _spans_nodes(self, gpus: int) -> bool:
        return gpus > self.inputs.gpus_per_node

    def allreduce(self, tp: int, size: float) -> float:
        """One all-reduce of `size` bytes over TP ranks: latency + ring bytes 2(TP-1)/TP over the slowest link."""
        if tp <= 1:
            return 0.0
        gpu, d = self.inputs.gpu, self.data
        if self._spans_nodes(tp):
            link, alpha = gpu.inter_node_bandwidth, d.get("links.network_allreduce_latency_s")
        elif gpu.has_nvlink:
            link, alpha = gpu.intra_node_bandwidth, d.get("links.nvlink_allreduce_latency_s")
        else:
            link, alpha = gpu.intra_node_bandwidth, d.get("links.pcie_allreduce_latency_s")
        return alpha + 2.0 * (tp - 1) / tp * size / (link * d.get("links.collective_efficiency"))

    def all_to_all(self, shape: Shape, tokens_per_gpu: float) -> float:
        """EP dispatch (FP8) + combine (BF16) of `tokens_per_gpu` tokens to k experts each, for one MoE layer.
        Traffic leaving the node goes over each GPU's NIC; the rest over NVLink."""
        m, gpu, d = self.inputs.model, self.inputs.gpu, self.data
        if not m.is_moe or shape.ep_size <= 1 or shape.dp <= 1:
            return 0.0
        g, gpn = shape.tp * shape.dp, self.inputs.gpus_per_node
        size = tokens_per_gpu * m.experts_per_token * m.hidden_size * 3.0 * (g - 1) / g
        remote = max(0.0, (g - gpn) / g) if g > gpn else 0.0
        eff = d.get("links.deepep_efficiency" if "deepep" in self.inputs.features else "links.all_to_all_efficiency")
        t = (1 - remote) * size / (gpu.intra_node_bandwidth * eff) + remote * size / (gpu.inter_node_bandwidth * eff)
        alpha = d.get("links.network_all_to_all_latency_s" if remote else "links.nvlink_all_to_all_latency_s")
        return 2.0 * alpha + t

    def hops(self, shape: Shape, tokens: float) -> float:
        """Sending `tokens` hidden states (2 bytes each element) across every pipeline stage boundary."""
        if shape.pp == 1:
            return 0.0
        gpu, d, gpn = self.inputs.gpu, self.data, self.inputs.gpus_per_node
        node_of = [(s * shape.tp) // gpn for s in range(shape.pp)]
        inter = sum(1 for a, b in itertools.pairwise(node_of) if a != b)
        intra = shape.pp - 1 - inter
        size = tokens * self.inputs.model.hidden_size * memory.ACTIVATION_BYTES
        eff = d.get("links.collective_efficiency")
        t_intra = d.get("links.nvlink_allreduce_latency_s") + size / (gpu.intra_node_bandwidth * eff)
        t_inter = d.get("links.network_hop_latency_s") + size / (gpu.inter_node_bandwidth * eff)
        return intra * t_intra + inter * t_inter

    # overheads -----------------------------------------------------------------------------------
    def layer_overhead(self, layers: int) -> float:
        """Fixed time per layer that no roofline term covers: small kernels (norms, rotary, cache writes,
        activations, routing) at the kernel floor each, plus the fused-MoE GEMMs' own floor (two per MoE layer)."""
        m, d = self.inputs.model, self.data
        kinds = ("mla_layer" if m.is_mla else "gqa_layer", "moe_layer" if m.is_moe else "dense_layer")
        kernels = sum(d.get(f"kernels.{k}") for k in kinds)
        if self.quant.act in ("fp8", "int8"):  # dynamic activation quantization: one kernel before each linear
            linears = (4 if m.is_mla else 2) + (2 + (2 if m.shared_expert_intermediate_size else 0) if m.is_moe else 2)
            kernels += linears * d.get("kernels.activation_quant_per_linear")
        fixed = kernels * d.get("latency.kernel_floor_s")
        if m.is_moe:
            fixed += 2 * d.get("latency.fused_moe_floor_s")
        return layers * fixed

    def _gemm(self, experts: bool = False) -> float:
        """Share of the matmul dtype's peak: DeepGEMM's measured FP8 efficiency when the deployment uses it."""
        d, q = self.data, self.quant
        if "deepgemm" in self.inputs.features and q.act == "fp8":
            return d.get("compute.deepgemm_fp8")
        e = d.gemm(q.act) * (d.get("compute.weight_only_factor") if q.quantized and q.act == "bf16" else 1.0)
        return e * (d.get(f"compute.moe_factor_{q.act}") if experts else 1.0)

    def _expert_bw(self) -> float:
        """Share of HBM bandwidth the MoE kernel for this weight format reaches streaming expert weights."""
        return self.data.get(f"memory.experts_{self.quant.weight_format}")

    # prefill -------------------------------------------------------------------------------------
    def prefill(self, shape: Shape, isl: int) -> Prefill:
        m, gpu, d, q = self.inputs.model, self.inputs.gpu, self.data, self.quant
        flops = prefill_flops(m, isl)
        exp_flops = expert_flops_per_token(m) * isl
        attn_flops = 4.0 * m.q_dim * _attended_pairs(m, isl)
        dense_flops = flops - exp_flops - attn_flops
        peak = gpu.peak_flops(q.act)
        dense_s = dense_flops / (peak * self._gemm())
        exp_s = exp_flops / (peak * self._gemm(experts=True))
        attn_s = attn_flops / (gpu.peak_flops("bf16") * d.get("compute.attention"))
        g, tp = shape.gpus, shape.tp
        chunks = ceil_div(isl, memory.MAX_NUM_BATCHED_TOKENS)
        dense_b, expert_b = memory.weight_split(m, shape, self.inputs.wdtype)
        weights = (dense_b / d.get("memory.weights") + expert_b / self._expert_bw()) / gpu.hbm_bandwidth
        layers = ceil_div(m.num_layers, shape.pp)
        ar = 2 * m.num_layers * self.allreduce(tp, min(isl, memory.MAX_NUM_BATCHED_TOKENS) * m.hidden_size * 2) * chunks
        a2a = (m.num_layers - m.dense_layers) * self.all_to_all(shape, isl / tp) if m.is_moe else 0.0
        fixed = chunks * (shape.pp * self.layer_overhead(layers) + d.get("latency.step_s"))
        compute_lat = max((dense_s + attn_s) / tp + exp_s / (tp * shape.dp), chunks * shape.pp * weights)
        latency = compute_lat + ar + a2a + fixed + self.hops(shape, isl) + d.get("latency.request_s")
        share = isl / memory.MAX_NUM_BATCHED_TOKENS  # short prompts share a chunked-prefill step
        busy = max((dense_s + attn_s + exp_s) / g, share * weights / shape.dp)
        service = busy + (ar + share * fixed) / (shape.pp * shape.dp) + a2a / shape.dp
        return Prefill(flops=flops, latency=latency, service=service, peak_flops=peak, compute_s=compute_lat,
                       comm_s=ar + a2a)

    # decode --------------------------------------------------------------------------------------
    def decode_step(self, shape: Shape, batch: float, context: float) -> DecodeStep:
        m, gpu, d, q = self.inputs.model, self.inputs.gpu, self.data, self.quant
        micro = max(1.0, batch / shape.pp)  # sequences per pipeline micro-batch
        b = max(1.0, micro / shape.dp)  # per DP rank: lockstep ranks wait for the busiest
        layers = ceil_div(m.num_layers, shape.pp)
        share = layers / m.num_layers
        bw = gpu.hbm_bandwidth
        dense_read, exp_read = memory.decode_read_bytes(m, shape, self.inputs.wdtype)
        peak = gpu.peak_flops(q.act)
        dense_flops = 2.0 * (dense_matmul_params(m) + m.params().lm_head) * share / shape.tp * b
        t_dense = max(dense_read / (bw * d.get("memory.weights")), dense_flops / (peak * self._gemm()))
        t_exp = 0.0
        if m.is_moe:
            exp_flops = expert_flops_per_token(m) * share * micro / (shape.tp * shape.dp)
            t_exp = max(exp_read * experts_touched(m, micro) / (bw * self._expert_bw()),
                        exp_flops / (peak * self._gemm(experts=True)))
        kv_read = b * kv.sequence_bytes(m, shape.tp, shape.pp, self.inputs.kvdtype, context, windowed=self.inputs.windowed)
        attn_flops = b * attention_decode_flops(m, context) * share / shape.tp
        t_kv = max(kv_read / (bw * d.get("memory.kv")), attn_flops / (gpu.peak_flops("bf16") * d.get("compute.attention")))
        comm = 2 * layers * self.allreduce(shape.tp, b * m.hidden_size * memory.ACTIVATION_BYTES)
        if m.is_moe:
            comm += (layers - math.ceil(m.dense_layers * share)) * self.all_to_all(shape, b / shape.tp)
        overhead = self.layer_overhead(layers)
        hops = self.hops(shape, micro)
        pp = shape.pp
        step = d.get("latency.step_s")
        stage = t_dense + t_exp + t_kv + comm + overhead  # communication is not overlapped with compute
        if "async-scheduling" in self.inputs.features:
            step = 0.0  # the scheduler prepares step n+1 while step n runs (vLLM --async-scheduling)
        return DecodeStep(
            batch=batch,
            time=pp * stage + hops + step,
            weights_s=pp * (t_dense + t_exp),
            kv_s=pp * t_kv,
            comm_s=pp * comm,
            hops_s=hops,
            overhead_s=pp * overhead + step,
        )

    def kv_transfer(self, decode_shape: Shape, isl: int) -> float:
        """Prefill → decode hand-off: each decode GPU receives its slice of the prompt's KV over its own NIC."""
        m, gpu, d = self.inputs.model, self.inputs.gpu, self.data
        per_gpu = kv.sequence_bytes(m, decode_shape.tp, decode_shape.pp, self.inputs.kvdtype, isl,
                                    windowed=self.inputs.windowed)
        return d.get("links.network_hop_latency_s") + per_gpu / (gpu.inter_node_bandwidth * d.get("links.kv_transfer_efficiency"))


def perf_model_for(inputs: PerfInputs, factory: PerfModelFactory | None = None) -> PerfModel:
    """The roofline, unless the request brings its own model (a measured profile)."""
    return factory(inputs) if factory is not None else Roofline(inputs)
