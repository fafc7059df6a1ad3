"""Model and GPU profiles: the two inputs every plan starts from, read from data files, never hard-coded.

A `ModelProfile` is the architecture arithmetic needs (layers, widths, heads, experts, MLA ranks) plus the
parameter counts derived from it; it is built from a Hugging Face `config.json` (`profile_from_config`) or
from GGUF metadata (`profile_from_gguf`), both pure functions. A `GpuProfile` is one datasheet: memory,
dense TFLOPS, HBM and link bandwidths, with sources cited in its YAML file.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmctl.errors import InvalidInput

DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp8": 1}
"""Bytes per weight / KV element for the dtypes a plan can choose (`--dtype`)."""


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by the role they play, because each role costs memory and bandwidth differently."""

    total: int
    active: int  # read for one token: attention, dense MLPs, shared + top-k routed experts, embeddings
    embedding: int  # input embedding + lm_head (one matrix when tied); kept in 16-bit even under FP8
    expert: int  # all routed-expert weights (0 for dense models)
    norms: int  # RMSNorm weights, kept in 16-bit
    max_layer: int  # the heaviest decoder layer, for pipeline-stage sizing
    lm_head: int  # the output projection (0 extra when tied: it is the embedding)


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
    native_dtype: str = "bf16"  # dtype of the shipped weights: bf16 (also fp16/fp32 checkpoints) or fp8
    # mixture of experts
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0  # total width of the always-on shared expert(s)
    dense_layers: int = 0  # leading layers with a dense MLP in a MoE model (DeepSeek first_k_dense_replace)
    # multi-head latent attention (DeepSeek V2/V3/R1)
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    parameter_count_override: int | None = None  # a count the source states (GGUF), preferred when given
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

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

    @property
    def has_nvlink(self) -> bool:
        return self.intra_node_link.startswith("nvlink")

    def peak_flops(self, dtype: str) -> float:
        """Dense FLOP/s for the matmul dtype; FP8 falls back to BF16 math where the GPU has no FP8 cores."""
        if dtype == "fp8" and self.fp8_tflops:
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

    Small tensors (biases, q/k norms) are ignored; the catalog tests check the result against each model
    card's published size.
    """
    h, L = m.hidden_size, m.num_layers
    attn = _attention_params(m)
    norms_per_layer = 2 * h
    dense_mlp = 3 * h * m.intermediate_size
    embed = m.vocab_size * h
    lm_head = 0 if m.tie_word_embeddings else m.vocab_size * h
    if m.is_moe:
        moe_layers = L - m.dense_layers
        expert = 3 * h * m.moe_intermediate_size
        shared = 3 * h * m.shared_expert_intermediate_size
        router = h * m.num_experts
        moe_layer = attn + norms_per_layer + m.num_experts * expert + shared + router
        dense_layer = attn + norms_per_layer + dense_mlp
        layers_total = moe_layers * moe_layer + m.dense_layers * dense_layer
        routed_total = moe_layers * m.num_experts * expert
        routed_active = moe_layers * m.experts_per_token * expert
        max_layer = max(moe_layer, dense_layer if m.dense_layers else 0)
    else:
        layers_total = L * (attn + norms_per_layer + dense_mlp)
        routed_total = routed_active = 0
        max_layer = attn + norms_per_layer + dense_mlp
    norms = L * norms_per_layer + h
    total = layers_total + h + embed + lm_head
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
    )


# -- config.json ------------------------------------------------------------------------------------


def _int(config: Mapping[str, Any], *keys: str, default: int | None = None) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and value:
            return int(value)
    return default


def native_dtype_of(config: Mapping[str, Any]) -> str:
    """bf16 for 16/32-bit checkpoints, fp8 when the checkpoint is FP8-quantized (DeepSeek-V3's config)."""
    q = config.get("quantization_config") or {}
    if isinstance(q, Mapping) and str(q.get("quant_method", "")).lower() in ("fp8", "fbgemm_fp8", "compressed-tensors-fp8"):
        return "fp8"
    return "bf16"


def profile_from_config(
    config: Mapping[str, Any], *, name: str, serve_id: str, source: str, aliases: tuple[str, ...] = ()
) -> ModelProfile:
    """A Hugging Face `config.json` → ModelProfile. Pure; raises InvalidInput naming the missing field."""
    cfg = dict(config)
    # multimodal wrappers keep the language model under text_config
    if "num_hidden_layers" not in cfg and isinstance(cfg.get("text_config"), Mapping):
        cfg = {**cfg, **cfg["text_config"]}
    missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size") if not cfg.get(k)]
    if missing:
        raise InvalidInput(f"{name}: config.json lacks {', '.join(missing)}; cannot size a plan for it")
    heads = int(cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    num_experts = _int(cfg, "num_experts", "n_routed_experts", "num_local_experts", default=0) or 0
    experts_per_token = _int(cfg, "num_experts_per_tok", "num_experts_per_token", "moe_topk", default=0) or 0
    inter = _int(cfg, "intermediate_size", "ffn_dim", default=4 * hidden) or 4 * hidden
    moe_inter = _int(cfg, "moe_intermediate_size", default=inter) if num_experts else 0
    shared = 0
    if num_experts:
        n_shared = _int(cfg, "n_shared_experts", default=0) or 0
        shared = n_shared * (moe_inter or 0) or (_int(cfg, "shared_expert_intermediate_size", default=0) or 0)
    dense_layers = 0
    if num_experts:
        dense_layers = _int(cfg, "first_k_dense_replace", default=0) or 0
        if not dense_layers and isinstance(cfg.get("mlp_only_layers"), list):
            dense_layers = len(cfg["mlp_only_layers"])
    arch = (cfg.get("architectures") or [cfg.get("model_type") or "unknown"])[0]
    return ModelProfile(
        name=name,
        serve_id=serve_id,
        source=source,
        architecture=str(arch),
        num_layers=int(cfg["num_hidden_layers"]),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=_int(cfg, "num_key_value_heads", "num_kv_heads", default=heads) or heads,
        head_dim=_int(cfg, "head_dim", default=hidden // heads) or hidden // heads,
        intermediate_size=inter,
        vocab_size=int(cfg["vocab_size"]),
        max_position_embeddings=_int(cfg, "max_position_embeddings", "max_sequence_length", default=4096) or 4096,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        native_dtype=native_dtype_of(cfg),
        num_experts=num_experts,
        experts_per_token=experts_per_token if num_experts else 0,
        moe_intermediate_size=moe_inter or 0,
        shared_expert_intermediate_size=shared,
        dense_layers=dense_layers,
        kv_lora_rank=_int(cfg, "kv_lora_rank", default=0) or 0,
        q_lora_rank=_int(cfg, "q_lora_rank", default=0) or 0,
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", default=0) or 0,
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim", default=0) or 0,
        v_head_dim=_int(cfg, "v_head_dim", default=0) or 0,
        aliases=aliases,
    )


# -- GGUF metadata ----------------------------------------------------------------------------------


def _gguf_scalar(value: Any) -> Any:
    """GGUF allows per-layer arrays for head counts and FFN widths; the widest layer sizes memory."""
    if isinstance(value, (list, tuple)):
        nums = [v for v in value if isinstance(v, (int, float))]
        return max(nums) if nums else None
    return value


def profile_from_gguf(kv: dict[str, object], parameter_count: int | None) -> ModelProfile:
    """GGUF key/values (`{arch}.block_count`, `{arch}.attention.head_count`, …) → ModelProfile. Pure.

    GGUF is what llmctl stores for llama.cpp; the plan sizes the same architecture for vLLM/SGLang at the
    plan's `--dtype`, so quantized GGUF bytes do not enter the arithmetic — the parameter count does.
    """
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidInput("GGUF metadata lacks general.architecture")

    def get(key: str, default: Any = None) -> Any:
        value = _gguf_scalar(kv.get(f"{arch}.{key}"))
        return default if value is None else value

    layers = get("block_count")
    hidden = get("embedding_length")
    heads = get("attention.head_count")
    if not layers or not hidden or not heads:
        raise InvalidInput(f"GGUF metadata for {arch} lacks block_count, embedding_length or attention.head_count")
    layers, hidden, heads = int(layers), int(hidden), int(heads)
    kv_heads = int(get("attention.head_count_kv", heads) or heads)
    vocab = get("vocab_size")
    if not vocab:
        tokens = kv.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, (list, tuple)) else 32000
    experts = int(get("expert_count", 0) or 0)
    ffn = int(get("feed_forward_length", 4 * hidden) or 4 * hidden)
    moe_ffn = int(get("expert_feed_forward_length", ffn) or ffn) if experts else 0
    shared = 0
    if experts:
        n_shared = int(get("expert_shared_count", 0) or 0)
        shared = n_shared * int(get("expert_shared_feed_forward_length", moe_ffn) or moe_ffn)
    kv_lora = int(get("attention.kv_lora_rank", 0) or 0)
    key_len = int(get("attention.key_length", hidden // heads) or hidden // heads)
    rope = int(get("rope.dimension_count", 0) or 0) if kv_lora else 0
    name = str(kv.get("general.name") or kv.get("general.basename") or arch)
    repo = kv.get("general.source.huggingface.repository") or kv.get("general.base_model.0.repo_url")
    serve_id = str(repo).removeprefix("https://huggingface.co/") if repo else name
    return ModelProfile(
        name=name,
        serve_id=serve_id,
        source="gguf",
        architecture=arch,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=key_len if not kv_lora else hidden // heads,
        intermediate_size=ffn,
        vocab_size=int(vocab),
        max_position_embeddings=int(get("context_length", 4096) or 4096),
        tie_word_embeddings=False,
        native_dtype="bf16",
        num_experts=experts,
        experts_per_token=int(get("expert_used_count", 0) or 0) if experts else 0,
        moe_intermediate_size=moe_ffn,
        shared_expert_intermediate_size=shared,
        dense_layers=int(get("leading_dense_block_count", 0) or 0) if experts else 0,
        kv_lora_rank=kv_lora,
        q_lora_rank=int(get("attention.q_lora_rank", 0) or 0),
        qk_rope_head_dim=rope,
        qk_nope_head_dim=(key_len - rope) if kv_lora else 0,
        v_head_dim=int(get("attention.value_length", 0) or 0) if kv_lora else 0,
        parameter_count_override=int(parameter_count) if parameter_count else None,
    )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
