"""Model and GPU profiles: the two inputs every plan starts from, read from data files, never hard-coded.

A `ModelProfile` is the architecture arithmetic needs (layers, widths, heads, experts, MLA ranks, which layers
attend over a sliding window, how the checkpoint is quantized) plus the parameter counts derived from it; it is
built from a Hugging Face `config.json` (`profile_from_config`, in hfconfig.py) or from GGUF metadata
(`profile_from_gguf`, in gguf_profile.py), both pure functions. A `GpuProfile` is one datasheet: memory, dense
TFLOPS, HBM and link bandwidths, with sources cited in its YAML file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from llmctl.errors import InvalidModel
from llmctl.plan.quant import NONE, Quant

DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp8": 1}
"""Bytes per KV element for the KV cache dtypes a plan can choose."""


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by the role they play, because each role costs memory, bandwidth and FLOPs differently."""

    total: int
    active: int  # read for one token: attention, dense MLPs, shared + top-k routed experts, embeddings
    embedding: int  # input embedding + lm_head (one matrix when tied); kept in 16-bit by every quantization
    expert: int  # all routed-expert weights (0 for dense models)
    norms: int  # RMSNorm weights, kept in 16-bit
    max_layer: int  # the heaviest decoder layer, for pipeline-stage sizing
    lm_head: int  # the output projection (the embedding matrix itself when tied)
    attention: int = 0  # attention projections, all layers
    mlp: int = 0  # dense MLPs and shared experts, all layers
    router: int = 0  # MoE gates, kept in 16-bit
    expert_each: int = 0  # one routed expert of one layer (3 x hidden x moe_intermediate)
    input_embedding: int = 0  # the embedding table alone (a lookup in decode, not a read)


MAX_LAYERS = 4096
"""The most decoder layers a profile may have (the largest published models have ~130): a config.json from a
hostile Hub repository or registry may say anything, and layers are walked one by one."""
MAX_WIDTH = 1 << 24
"""The most any width, head count, vocabulary or expert count may be (16M; real ones stay below 300k)."""
MAX_CONTEXT = 1 << 32
"""The most tokens of context a profile may claim (4G; the longest published contexts are 10M)."""

_POSITIVE = ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim", "intermediate_size",
             "vocab_size", "max_position_embeddings")
_NON_NEGATIVE = ("num_experts", "experts_per_token", "moe_intermediate_size", "shared_expert_intermediate_size",
                 "dense_layers", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
                 "sliding_window", "vision_params")


def _short(value: object) -> str:
    """A value for an error line: a 300-digit layer count is cut, not printed whole."""
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


@dataclass(frozen=True)
class ModelProfile:
    """The architecture of one model, as far as memory and speed arithmetic needs it."""

    name: str
    serve_id: str  # what the engine is told to load: a Hugging Face id or a local path
    source: str  # catalog | local | hf-cache | gguf
    architecture: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    quant: Quant = NONE  # how the checkpoint stores its linear layers (quantization_config)
    # mixture of experts
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0  # total width of the always-on shared expert(s)
    dense_layers: int = 0  # layers with a dense MLP in a MoE model (DeepSeek first_k_dense_replace)
    # multi-head latent attention (DeepSeek V2/V3/R1)
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # sliding-window layers (gpt-oss, Gemma 2/3, Mistral): "sliding" or "full" per layer; empty = all full
    layer_attention: tuple[str, ...] = ()
    sliding_window: int = 0
    vision_params: int = 0  # a vision tower served alongside (multimodal checkpoints), kept 16-bit
    parameter_count_override: int | None = None  # a count the source states (GGUF), preferred when given
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        """Refuse a shape no arithmetic should run on (a zero, a negative, a layer count that would take hours):
        config.json and GGUF metadata come from registries and Hub repositories llmctl does not control."""
        for name in _POSITIVE + _NON_NEGATIVE:
            value = getattr(self, name)
            low = 1 if name in _POSITIVE else 0
            high = MAX_LAYERS if name == "num_layers" else MAX_CONTEXT if name == "max_position_embeddings" \
                else MAX_WIDTH * MAX_WIDTH if name == "vision_params" else MAX_WIDTH
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidModel(f"{self.name}: {name} {_short(value)} is not an integer from {low} to {high:,}; "
                                   "cannot size a plan for it")
        if self.num_experts and not 1 <= self.experts_per_token <= self.num_experts:
            raise InvalidModel(f"{self.name}: {self.experts_per_token} experts per token of {self.num_experts} "
                               "routed experts; cannot size a plan for it")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def native_dtype(self) -> str:
        """The checkpoint's weight format: bf16 for 16/32-bit checkpoints, else the quantized format."""
        return self.quant.weight_format if self.quant.quantized else "bf16"

    @property
    def sliding_layers(self) -> int:
        return sum(1 for k in self.layer_attention if k == "sliding") if self.sliding_window else 0

    @property
    def q_dim(self) -> int:
        """Width of Q (and of QKᵀ per token), which sets attention FLOPs."""
        if self.is_mla:
            return self.num_attention_heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
        return self.num_attention_heads * self.head_dim

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """KV cache elements one token stores in one layer: 2·kv_heads·head_dim, or the MLA latent."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    def params(self) -> ParamCounts:
        return count_parameters(self)


@dataclass(frozen=True)
class GpuProfile:
    """One accelerator's datasheet numbers (dense, no sparsity), loaded from data/plan/gpus/NAME.yaml."""

    name: str
    description: str
    memory_bytes: int
    memory_gb: float
    bf16_tflops: float
    fp8_tflops: float | None
    hbm_bandwidth: float  # bytes/s
    intra_node_link: str
    intra_node_bandwidth: float  # bytes/s per direction per GPU
    inter_node_bandwidth: float  # bytes/s per GPU
    default_gpus_per_node: int
    k8s_resource: str = "nvidia.com/gpu"
    aliases: tuple[str, ...] = ()
    arch: str = "hopper"  # selects data/plan/perf/<arch>.yaml: measured efficiencies of that generation
    fp4_tflops: float | None = None

    @property
    def has_nvlink(self) -> bool:
        return self.intra_node_link.startswith("nvlink")

    def peak_flops(self, dtype: str) -> float:
        """Dense FLOP/s for the matmul dtype; FP8/INT8/FP4 fall back to the next format the GPU has."""
        if dtype == "fp4" and self.fp4_tflops:
            return self.fp4_tflops * 1e12
        if dtype in ("fp8", "int8", "fp4") and self.fp8_tflops:
            return self.fp8_tflops * 1e12
        return self.bf16_tflops * 1e12


# -- parameter arithmetic ----------------------------------------------------------------------------


def _attention_params(m: ModelProfile) -> int:
    h = m.hidden_size
    if m.is_mla:
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * m.num_attention_heads * qk
        else:
            q = h * m.num_attention_heads * qk
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
        kv_b = m.kv_lora_rank * m.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
        o = m.num_attention_heads * m.v_head_dim * h
        return q + kv_a + kv_b + o
    q = h * m.num_attention_heads * m.head_dim
    kv = 2 * h * m.num_kv_heads * m.head_dim
    o = m.num_attention_heads * m.head_dim * h
    return q + kv + o


@functools.lru_cache(maxsize=256)
def count_parameters(m: ModelProfile) -> ParamCounts:
    """Parameters from the architecture: gated MLPs (3·h·I), attention (GQA or MLA), experts, embeddings.

    Small tensors (biases, q/k norms, attention sinks) are ignored; the catalog tests check the result against
    each model card's published size.
    """
    h, L = m.hidden_size, m.num_layers
    attn = _attention_params(m)
    norms_per_layer = 2 * h
    dense_mlp = 3 * h * m.intermediate_size
    embed = m.vocab_size * h
    lm_head = 0 if m.tie_word_embeddings else m.vocab_size * h
    expert_each = 3 * h * m.moe_intermediate_size if m.is_moe else 0
    if m.is_moe:
        moe_layers = L - m.dense_layers
        shared = 3 * h * m.shared_expert_intermediate_size
        router = h * m.num_experts
        moe_layer = attn + norms_per_layer + m.num_experts * expert_each + shared + router
        dense_layer = attn + norms_per_layer + dense_mlp
        layers_total = moe_layers * moe_layer + m.dense_layers * dense_layer
        routed_total = moe_layers * m.num_experts * expert_each
        routed_active = moe_layers * m.experts_per_token * expert_each
        max_layer = max(moe_layer, dense_layer if m.dense_layers else 0)
        mlp_total, router_total = moe_layers * shared + m.dense_layers * dense_mlp, moe_layers * router
    else:
        layers_total = L * (attn + norms_per_layer + dense_mlp)
        routed_total = routed_active = 0
        max_layer = attn + norms_per_layer + dense_mlp
        mlp_total, router_total = L * dense_mlp, 0
    norms = L * norms_per_layer + h + m.vision_params  # vision towers stay 16-bit, like norms
    total = layers_total + h + embed + lm_head + m.vision_params
    if m.parameter_count_override:
        total = m.parameter_count_override
    active = total - routed_total + routed_active
    return ParamCounts(
        total=total,
        active=active,
        embedding=embed + lm_head,
        expert=routed_total,
        norms=norms,
        max_layer=max_layer,
        lm_head=lm_head if lm_head else embed,
        attention=L * attn,
        mlp=mlp_total,
        router=router_total,
        expert_each=expert_each,
        input_embedding=embed,
    )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
