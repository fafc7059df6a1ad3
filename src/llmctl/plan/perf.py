"""Speed arithmetic: prefill is compute-bound, decode is bandwidth-bound, queues are M/D/1.

Pure functions. Each constant below is an assumption a user may disagree with; it is named, explained, and
printed by `--format explain` so the numbers can be checked by hand. docs/planner.md derives the formulas.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from llmctl.plan import memory
from llmctl.plan.memory import Shape
from llmctl.plan.profiles import GpuProfile, ModelProfile, ceil_div

PREFILL_MFU = 0.45
"""Share of dense peak FLOP/s a prefill reaches end to end. Large prefill GEMMs alone run at 60-70% of
peak on Hopper; attention, norms, TP all-reduce and scheduling bring whole-model prefill to roughly 40-50%
in vLLM/SGLang measurements. 0.45 sits in that range."""

DECODE_BW_EFFICIENCY = 0.75
"""Share of peak HBM bandwidth that memory-bound decode kernels (weight GEMV, paged attention) sustain."""

LINK_EFFICIENCY = 0.70
"""Share of NVLink/PCIe/NIC line rate that NCCL collectives and activation hops reach for decode-size messages."""

NVLINK_ALLREDUCE_LATENCY_S = 8e-6
"""Fixed cost of one small all-reduce over NVLink (custom all-reduce / NCCL LL protocol): ~5-10 µs."""

PCIE_ALLREDUCE_LATENCY_S = 25e-6
"""Fixed cost of one small all-reduce over PCIe without NVLink (L40S-class servers)."""

NETWORK_HOP_LATENCY_S = 20e-6
"""Fixed cost of one inter-node message (RDMA send + NCCL bookkeeping), for pipeline hops and KV transfer."""

KV_TRANSFER_EFFICIENCY = 0.60
"""Share of NIC line rate that KV transfer (NIXL/Mooncake RDMA of paged blocks) reaches."""

MAX_UTILIZATION = 0.85
"""Highest busy fraction the planner loads a prefill queue to: M/D/1 waits grow as 1/(1-rho)."""


def matmul_params(model: ModelProfile) -> int:
    """Parameters a prompt token multiplies through: active parameters minus the embedding table (a lookup)
    and minus lm_head (logits are computed for the last token only)."""
    pc = model.params()
    return pc.active - pc.embedding


def prefill_flops(model: ModelProfile, isl: int) -> float:
    """2 x matmul params x ISL + 2 x L x ISL^2 x q_dim (causal QK^T and PV) + 2 x vocab x hidden (one logit row)."""
    linear = 2.0 * matmul_params(model) * isl
    attention = 2.0 * model.num_layers * isl * isl * model.q_dim
    logits = 2.0 * model.vocab_size * model.hidden_size
    return linear + attention + logits


def _allreduce_latency(gpu: GpuProfile) -> float:
    return NVLINK_ALLREDUCE_LATENCY_S if gpu.has_nvlink else PCIE_ALLREDUCE_LATENCY_S


def _stage_hops(shape: Shape, gpus_per_node: int) -> tuple[int, int]:
    """(hops inside a node, hops between nodes) a token crosses through PP stages."""
    if shape.pp == 1:
        return 0, 0
    node_of = [(s * shape.tp) // gpus_per_node for s in range(shape.pp)]
    inter = sum(1 for a, b in itertools.pairwise(node_of) if a != b)
    return shape.pp - 1 - inter, inter


def pipeline_hop_time(model: ModelProfile, gpu: GpuProfile, shape: Shape, tokens: float, gpus_per_node: int) -> float:
    """Sending `tokens` hidden states (tokens x hidden x 2 bytes) across every stage boundary."""
    intra, inter = _stage_hops(shape, gpus_per_node)
    size = tokens * model.hidden_size * memory.ACTIVATION_BYTES
    t_intra = _allreduce_latency(gpu) + size / (gpu.intra_node_bandwidth * LINK_EFFICIENCY)
    t_inter = NETWORK_HOP_LATENCY_S + size / (gpu.inter_node_bandwidth * LINK_EFFICIENCY)
    return intra * t_intra + inter * t_inter


@dataclass(frozen=True)
class Prefill:
    flops: float
    latency: float  # one request alone: all stages in turn, plus pipeline hops
    service: float  # instance time per request when the pipeline is full (latency / PP, hops overlap)
    peak_flops: float


def prefill(model: ModelProfile, gpu: GpuProfile, shape: Shape, wdtype: str, isl: int, gpus_per_node: int) -> Prefill:
    flops = prefill_flops(model, isl)
    peak = gpu.peak_flops(wdtype)
    compute = flops / (shape.tp * peak * PREFILL_MFU)
    hops = pipeline_hop_time(model, gpu, shape, isl, gpus_per_node)
    return Prefill(flops=flops, latency=compute + hops, service=compute / shape.pp, peak_flops=peak)


def experts_touched(model: ModelProfile, tokens: float) -> float:
    """Expected share of routed experts a step reads: 1 - (1 - k/E)^tokens (uniform routing)."""
    if not model.is_moe:
        return 1.0
    miss = 1.0 - model.experts_per_token / model.num_experts
    return 1.0 - miss ** max(tokens, 1.0)


@dataclass(frozen=True)
class DecodeStep:
    """Time for one decode step (one new token for each of `batch` sequences) and where it goes."""

    batch: float
    time: float
    weights_s: float
    kv_s: float
    comm_s: float
    hops_s: float


def decode_step(
    model: ModelProfile,
    gpu: GpuProfile,
    shape: Shape,
    wdtype: str,
    kvdtype: str,
    batch: float,
    context: float,
    gpus_per_node: int,
) -> DecodeStep:
    """TPOT at a batch: each PP stage streams its weights (touched experts only) and its sequences' KV from
    HBM, and all-reduces twice per layer over TP; stages run in turn for one token, so TPOT = PP x stage."""
    micro = max(1.0, batch / shape.pp)  # sequences per pipeline micro-batch
    weights = memory.weight_bytes_per_gpu(model, shape, wdtype)
    frac_e = memory.expert_weight_fraction(model, wdtype)
    read_w = weights * (1.0 - frac_e + frac_e * experts_touched(model, micro))
    read_kv = micro * context * memory.kv_bytes_per_token_per_gpu(model, shape, kvdtype)
    bw = gpu.hbm_bandwidth * DECODE_BW_EFFICIENCY
    layers = ceil_div(model.num_layers, shape.pp)
    comm = 0.0
    if shape.tp > 1:
        msg = micro * model.hidden_size * memory.ACTIVATION_BYTES
        ring = 2.0 * (shape.tp - 1) / shape.tp * msg / (gpu.intra_node_bandwidth * LINK_EFFICIENCY)
        comm = 2 * layers * (_allreduce_latency(gpu) + ring)
    hops = pipeline_hop_time(model, gpu, shape, micro, gpus_per_node)
    pp = shape.pp
    return DecodeStep(
        batch=batch,
        time=pp * (read_w / bw + read_kv / bw + comm) + hops,
        weights_s=pp * read_w / bw,
        kv_s=pp * read_kv / bw,
        comm_s=pp * comm,
        hops_s=hops,
    )


def kv_transfer_time(model: ModelProfile, gpu: GpuProfile, decode_shape: Shape, kvdtype: str, isl: int) -> float:
    """Prefill → decode KV hand-off: each decode GPU receives its slice (ISL x KV bytes per token per GPU)
    over its own NIC, all GPUs in parallel."""
    per_gpu = isl * memory.kv_bytes_per_token_per_gpu(model, decode_shape, kvdtype)
    return NETWORK_HOP_LATENCY_S + per_gpu / (gpu.inter_node_bandwidth * KV_TRANSFER_EFFICIENCY)


def md1_wait(rho: float, service: float) -> float:
    """Mean queueing delay of an M/D/1 queue (Poisson arrivals, fixed service): rho x S / (2 (1 - rho))."""
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return float("inf")
    return rho * service / (2.0 * (1.0 - rho))
