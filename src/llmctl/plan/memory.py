"""GPU memory arithmetic: weights per GPU under TP x PP, KV cache bytes per token, and what is left for KV.

Pure functions of (model, GPU, shape, dtypes). Every constant is named with the reason for its value, and
docs/planner.md gives the same formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.plan.profiles import DTYPE_BYTES, GpuProfile, ModelProfile, ceil_div
from llmctl.plan.units import GiB

GPU_MEMORY_UTILIZATION = 0.90
"""vLLM's default `--gpu-memory-utilization`: the share of device memory vLLM may use. The other 10% covers
the CUDA context and allocations outside vLLM's profiler; the planner renders the same value it budgets."""

RUNTIME_RESERVE_BYTES = int(1.5 * GiB)
"""CUDA graphs (vLLM captures decode graphs for up to 512 batch sizes: about 0.5-1 GiB), NCCL buffers and
sampler state: memory inside the budget that is neither weights, activations nor KV cache."""

MAX_NUM_BATCHED_TOKENS = 8192
"""Tokens per engine step (chunked prefill). Rendered as `--max-num-batched-tokens`; sets activation peak."""

MAX_NUM_SEQS = 1024
"""Upper bound on concurrent sequences per instance (vLLM's default on 80 GB-class GPUs). The plan renders
`--max-num-seqs` as the batch it actually sizes, which is at most this."""

ACTIVATION_BYTES = 2
"""Activations stay in 16-bit even with FP8 weights."""

LOGIT_BYTES = 4
"""Logits are materialised in FP32 for sampling."""


@dataclass(frozen=True)
class Shape:
    """One engine instance: tensor parallel within a node, pipeline parallel across stages."""

    tp: int
    pp: int

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    def nodes(self, gpus_per_node: int) -> int:
        return ceil_div(self.gpus, gpus_per_node)

    def __str__(self) -> str:
        return f"TP {self.tp} x PP {self.pp}"


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU memory of one instance shape; bytes unless named otherwise."""

    device_bytes: int
    budget: int  # device_bytes x GPU_MEMORY_UTILIZATION
    weights: int  # the heaviest pipeline stage's share on one GPU
    activations: int
    runtime: int
    kv_free: int  # budget - weights - activations - runtime (may be negative: does not fit)
    kv_bytes_per_token: float  # on one GPU
    kv_tokens: int  # tokens of KV the instance holds (every GPU holds its slice of every token)
    max_model_len: int

    @property
    def fits(self) -> bool:
        """The engine refuses to start unless one max-length sequence fits in KV cache."""
        return self.kv_free > 0 and self.kv_tokens >= self.max_model_len

    @property
    def max_seqs(self) -> int:
        """Concurrent sequences whose full context (max_model_len) fits in KV at once."""
        return max(0, self.kv_tokens // self.max_model_len)


def weight_bytes_total(model: ModelProfile, wdtype: str) -> int:
    """All weights: linear layers at `wdtype`, embeddings/lm_head and norms kept in 16-bit (as vLLM's FP8 does)."""
    pc = model.params()
    sixteen_bit = pc.embedding + pc.norms
    return (pc.total - sixteen_bit) * DTYPE_BYTES[wdtype] + sixteen_bit * 2


def weight_bytes_per_gpu(model: ModelProfile, shape: Shape, wdtype: str) -> int:
    """Weights on one GPU: total / TP without PP; with PP, the heaviest stage (ceil(L/PP) of the heaviest
    layer, plus the embedding or lm_head that the first and last stages hold) / TP."""
    if shape.pp == 1:
        return ceil_div(weight_bytes_total(model, wdtype), shape.tp)
    pc = model.params()
    layers = ceil_div(model.num_layers, shape.pp)
    embed = model.vocab_size * model.hidden_size
    stage = layers * pc.max_layer * DTYPE_BYTES[wdtype] + embed * 2
    return ceil_div(stage, shape.tp)


def expert_weight_fraction(model: ModelProfile, wdtype: str) -> float:
    """Share of weight bytes that are routed experts: only the experts a step's tokens hit are read."""
    if not model.is_moe:
        return 0.0
    return model.params().expert * DTYPE_BYTES[wdtype] / weight_bytes_total(model, wdtype)


def kv_bytes_per_token(model: ModelProfile, kvdtype: str) -> int:
    """Whole-model KV per token: layers x 2 x kv_heads x head_dim x bytes, or layers x (latent + rope) x bytes (MLA)."""
    return model.num_layers * model.kv_elements_per_token_per_layer * DTYPE_BYTES[kvdtype]


def kv_bytes_per_token_per_gpu(model: ModelProfile, shape: Shape, kvdtype: str) -> float:
    """One GPU's slice: its stage's layers; KV heads split over TP (TP divides them). MLA's latent is not
    split by TP: every rank keeps the whole latent for its stage's layers."""
    layers = ceil_div(model.num_layers, shape.pp)
    per_layer = model.kv_elements_per_token_per_layer * DTYPE_BYTES[kvdtype]
    if model.is_mla:
        return float(layers * per_layer)
    return layers * per_layer / shape.tp


def activation_bytes_per_gpu(model: ModelProfile, shape: Shape) -> int:
    """Peak live activations of one engine step of MAX_NUM_BATCHED_TOKENS tokens, plus FP32 logits for
    MAX_NUM_SEQS sampled rows: tokens x (2 hidden + q + kv + 2 x mlp) / TP x 2 bytes."""
    t = MAX_NUM_BATCHED_TOKENS
    h = model.hidden_size
    kv_width = model.kv_elements_per_token_per_layer
    if model.is_moe:
        mlp = model.experts_per_token * model.moe_intermediate_size + model.shared_expert_intermediate_size
    else:
        mlp = model.intermediate_size
    per_token = 2 * h + (model.q_dim + kv_width + 2 * mlp) / shape.tp
    logits = MAX_NUM_SEQS * model.vocab_size / shape.tp * LOGIT_BYTES
    return int(t * per_token * ACTIVATION_BYTES + logits)


def memory_breakdown(
    model: ModelProfile, gpu: GpuProfile, shape: Shape, wdtype: str, kvdtype: str, max_model_len: int
) -> MemoryBreakdown:
    budget = int(gpu.memory_bytes * GPU_MEMORY_UTILIZATION)
    weights = weight_bytes_per_gpu(model, shape, wdtype)
    acts = activation_bytes_per_gpu(model, shape)
    free = budget - weights - acts - RUNTIME_RESERVE_BYTES
    per_token = kv_bytes_per_token_per_gpu(model, shape, kvdtype)
    tokens = int(free // per_token) if free > 0 else 0
    return MemoryBreakdown(
        device_bytes=gpu.memory_bytes,
        budget=budget,
        weights=weights,
        activations=acts,
        runtime=RUNTIME_RESERVE_BYTES,
        kv_free=free,
        kv_bytes_per_token=per_token,
        kv_tokens=tokens,
        max_model_len=max_model_len,
    )
