"""GPU memory arithmetic: weights per GPU under TP x PP (x DP with expert parallelism), KV per sequence, and
what is left for KV.

Weights are counted by role because quantization and parallelism treat roles differently: the checkpoint's
method quantizes its linear layers (only the routed experts for gpt-oss's MXFP4) while embeddings, norms and
routers stay 16-bit; attention and dense MLPs are split over TP and replicated across DP-attention ranks, while
routed experts are spread over every GPU of the group (EP, or vLLM's TP-style expert sharding over DP x TP).
Pure functions; docs/planner.md gives the same formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.plan import kv
from llmctl.plan.profiles import GpuProfile, ModelProfile, ceil_div
from llmctl.plan.quant import ONLINE_FP8, Quant
from llmctl.plan.units import GiB

GPU_MEMORY_UTILIZATION = 0.90
"""vLLM's default `--gpu-memory-utilization`: the share of device memory vLLM may use. The other 10% covers
the CUDA context and allocations outside vLLM's profiler; the planner renders the same value it budgets."""

RUNTIME_RESERVE_BYTES = int(1.5 * GiB)
"""CUDA graphs (vLLM captures decode graphs for up to 512 batch sizes: about 0.5-1 GiB), NCCL buffers and
sampler state: memory inside the budget that is neither weights, activations nor KV cache."""

EP_BUFFER_BYTES = 2 * GiB
"""All-to-all buffers of expert parallelism across DP ranks (DeepEP/pplx preallocate send/receive buffers sized
for the largest dispatch: Buffer.get_low_latency_rdma_size_hint is ~1-2 GiB for DeepSeek's 7168-wide tokens)."""

MAX_NUM_BATCHED_TOKENS = 8192
"""Tokens per engine step (chunked prefill). Rendered as `--max-num-batched-tokens`; sets activation peak."""

MAX_NUM_SEQS = 1024
"""Upper bound on concurrent sequences per engine (vLLM's default on 80 GB-class GPUs). The plan renders
`--max-num-seqs` as the batch it actually sizes, which is at most this (per DP rank)."""

ACTIVATION_BYTES = 2
"""Activations stay in 16-bit even with FP8 weights."""

LOGIT_BYTES = 4
"""Logits are materialised in FP32 for sampling."""


@dataclass(frozen=True)
class Shape:
    """One engine instance: TP within a DP-attention rank, PP stages, DP-attention ranks; `ep` spreads the
    routed experts over all tp x dp GPUs. dp > 1 only for MoE models: the ranks run in lockstep (every MoE
    layer exchanges tokens between them), so the group is one instance, priced as one."""

    tp: int
    pp: int
    dp: int = 1
    ep: bool = False

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def ep_size(self) -> int:
        return self.tp * self.dp if self.ep else 1

    def nodes(self, gpus_per_node: int) -> int:
        return ceil_div(self.gpus, gpus_per_node)

    def __str__(self) -> str:
        if self.dp > 1:
            return f"DP {self.dp} x TP {self.tp}" + (f" (EP {self.ep_size})" if self.ep else "")
        return f"TP {self.tp} x PP {self.pp}"


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU memory of one instance shape; bytes unless named otherwise."""

    device_bytes: int
    budget: int  # device_bytes x utilization
    weights: int  # the heaviest pipeline stage's share on one GPU
    activations: int
    runtime: int
    kv_free: int  # budget - weights - activations - runtime (may be negative: does not fit)
    kv_bytes_per_token: float  # on one GPU, at full attention
    kv_tokens: int  # tokens of max-length sequences the instance holds (every DP rank holds its own)
    max_model_len: int
    kv_seq_bytes: float = 0.0  # one max-length sequence on one GPU (sliding layers keep their window only)
    dp: int = 1
    expert_weights: int = 0  # routed-expert part of `weights`
    utilization: float = GPU_MEMORY_UTILIZATION  # the share of device memory the engine may use (a role's own)

    @property
    def static_bytes(self) -> int:
        """Weights plus the KV pool: what SGLang's --mem-fraction-static covers (activations and CUDA graphs not)."""
        return self.weights + max(0, self.kv_free)

    @property
    def fits(self) -> bool:
        """The engine refuses to start unless one max-length sequence fits in KV cache."""
        return self.kv_free > 0 and self.max_seqs >= 1

    @property
    def max_seqs(self) -> int:
        """Concurrent max-length sequences the instance holds: each DP rank holds its own."""
        per_seq = self.kv_seq_bytes or self.kv_bytes_per_token * self.max_model_len
        return self.dp * max(0, int(self.kv_free // per_seq)) if self.kv_free > 0 else 0


@dataclass(frozen=True)
class RoleBytes:
    """Whole-model weight bytes by role, at the checkpoint's (or the plan's) quantization."""

    attention: float
    mlp: float  # dense MLPs and shared experts
    experts: float  # routed experts
    small: float  # routers and norms (16-bit)
    embed: float  # input embedding table
    head: float  # lm_head (0 when tied)

    @property
    def total(self) -> float:
        return self.attention + self.mlp + self.experts + self.small + self.embed + self.head

    @property
    def dense(self) -> float:
        return self.total - self.experts


def plan_quant(model: ModelProfile, wdtype: str) -> Quant:
    """The weights the plan serves: the checkpoint's, or online FP8 of a 16-bit checkpoint (`--dtype fp8`)."""
    if wdtype == "fp8" and not model.quant.quantized:
        return ONLINE_FP8
    return model.quant


def role_bytes(model: ModelProfile, quant: Quant) -> RoleBytes:
    pc = model.params()
    attention, mlp = float(pc.attention), float(pc.mlp)
    if model.parameter_count_override:  # GGUF states the total; scale the linear layers to match it
        linear = pc.total - pc.embedding - pc.norms - pc.expert - pc.router
        scale = linear / (attention + mlp) if attention + mlp else 1.0
        attention, mlp = attention * scale, mlp * scale
    return RoleBytes(
        attention=attention * quant.bytes_for("attention"),
        mlp=mlp * quant.bytes_for("mlp"),
        experts=pc.expert * quant.bytes_for("experts"),
        small=(pc.router + pc.norms) * 2.0,
        embed=pc.input_embedding * 2.0,
        head=(0 if model.tie_word_embeddings else pc.lm_head) * 2.0,
    )


def weight_bytes_total(model: ModelProfile, wdtype: str) -> int:
    """All weights: quantized roles at their format's bits, embeddings, norms and routers in 16-bit."""
    return int(role_bytes(model, plan_quant(model, wdtype)).total)


def _stage_split(model: ModelProfile, quant: Quant, rb: RoleBytes, pp: int) -> tuple[float, float]:
    """(non-expert, expert) bytes of the heaviest pipeline stage: ceil(L/PP) of the heaviest layer, plus the
    embedding or lm_head that the first and last stages hold."""
    h, L = model.hidden_size, model.num_layers
    attn = rb.attention / L
    small = 2.0 * (2 * h + (h * model.num_experts if model.is_moe else 0))
    dense_layer = (attn + 3 * h * model.intermediate_size * quant.bytes_for("mlp") + small, 0.0)
    layer = dense_layer
    if model.is_moe:
        shared = 3 * h * model.shared_expert_intermediate_size * quant.bytes_for("mlp")
        experts = model.num_experts * model.params().expert_each * quant.bytes_for("experts")
        moe_layer = (attn + shared + small, experts)
        layer = max(moe_layer, dense_layer, key=sum) if model.dense_layers else moe_layer
    layers = ceil_div(L, pp)
    return layers * layer[0] + max(rb.embed, rb.head), layers * layer[1]


def weight_split(model: ModelProfile, shape: Shape, wdtype: str) -> tuple[int, int]:
    """(non-expert, expert) weight bytes on one GPU: non-expert / TP (replicated across DP ranks), experts /
    (TP x DP); with PP, the heaviest stage."""
    quant = plan_quant(model, wdtype)
    rb = role_bytes(model, quant)
    if shape.pp == 1:
        dense, experts = rb.dense, rb.experts
    else:
        dense, experts = _stage_split(model, quant, rb, shape.pp)
    return ceil_div(int(dense), shape.tp), ceil_div(int(experts), shape.tp * shape.dp)


def weight_bytes_per_gpu(model: ModelProfile, shape: Shape, wdtype: str) -> int:
    return sum(weight_split(model, shape, wdtype))


def decode_read_bytes(model: ModelProfile, shape: Shape, wdtype: str) -> tuple[float, float]:
    """(non-expert, expert) bytes a decode step streams per GPU: all weights but the input embedding table,
    which decode only gathers rows from (it is read as the lm_head when tied)."""
    dense, experts = weight_split(model, shape, wdtype)
    if shape.pp == 1 and not model.tie_word_embeddings:
        dense -= role_bytes(model, plan_quant(model, wdtype)).embed / shape.tp
    return float(dense), float(experts)


def activation_bytes_per_gpu(model: ModelProfile, shape: Shape) -> int:
    """Peak live activations of one engine step of MAX_NUM_BATCHED_TOKENS tokens, plus FP32 logits for
    MAX_NUM_SEQS sampled rows: tokens x (2 hidden + (q + kv + 2 x mlp) / TP) x 2 bytes."""
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


def runtime_reserve(shape: Shape) -> int:
    return RUNTIME_RESERVE_BYTES + (EP_BUFFER_BYTES if shape.dp > 1 else 0)


def memory_breakdown(
    model: ModelProfile, gpu: GpuProfile, shape: Shape, wdtype: str, kvdtype: str, max_model_len: int,
    *, windowed: bool = True, utilization: float = GPU_MEMORY_UTILIZATION,
) -> MemoryBreakdown:
    """Per GPU of one instance. `utilization` is the engine's share of device memory: vLLM's default, or less for a
    P/D role that keeps a connector buffer outside the engine (LMCache)."""
    budget = int(gpu.memory_bytes * utilization)
    dense, experts = weight_split(model, shape, wdtype)
    weights = dense + experts
    acts = activation_bytes_per_gpu(model, shape)
    reserve = runtime_reserve(shape)
    free = budget - weights - acts - reserve
    per_token = kv.bytes_per_token(model, shape.tp, shape.pp, kvdtype)
    seq = kv.sequence_bytes(model, shape.tp, shape.pp, kvdtype, max_model_len, windowed=windowed)
    effective = seq / max_model_len
    tokens = shape.dp * int(free // effective) if free > 0 else 0
    return MemoryBreakdown(
        device_bytes=gpu.memory_bytes,
        budget=budget,
        weights=weights,
        activations=acts,
        runtime=reserve,
        kv_free=free,
        kv_bytes_per_token=per_token,
        kv_tokens=tokens,
        max_model_len=max_model_len,
        kv_seq_bytes=seq,
        dp=shape.dp,
        expert_weights=experts,
        utilization=utilization,
    )


# kept for callers that size KV without a shape
kv_bytes_per_token = kv.whole_model_bytes_per_token
