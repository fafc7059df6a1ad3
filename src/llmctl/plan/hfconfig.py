"""A Hugging Face `config.json` → ModelProfile: architecture fields, which layers slide, how weights are stored.

Only architectures whose arithmetic llmctl models are sized (decoder-only, gated MLPs, GQA or MLA attention, full
or sliding-window layers, routed experts); anything else is refused with the reason, never planned wrongly: a
state-space layer keeps a fixed state instead of a KV cache, a 2-matrix MLP has a third fewer parameters than
the 3-matrix formula counts, an encoder-decoder has two stacks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from llmctl.errors import InvalidInput, InvalidModel, PlanError
from llmctl.plan.profiles import MAX_LAYERS, ModelProfile
from llmctl.plan.quant import quant_from_config

SUPPORTED = {
    "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
    "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM",
    "GptOssForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration",
    "Phi3ForCausalLM", "Glm4MoeForCausalLM", "GraniteForCausalLM", "OlmoForCausalLM", "Olmo2ForCausalLM",
}
"""Architectures whose parameter count, KV cache and FLOPs the formulas in docs/planner.md describe."""

UNSUPPORTED = {
    "Qwen3NextForCausalLM": "Gated DeltaNet linear-attention layers keep a fixed-size state, not a KV cache",
    "NemotronHForCausalLM": "Mamba-2 layers keep a fixed-size state, not a KV cache",
    "JambaForCausalLM": "Mamba layers keep a fixed-size state, not a KV cache",
    "FalconH1ForCausalLM": "Mamba-2 layers keep a fixed-size state, not a KV cache",
    "MambaForCausalLM": "a state-space model keeps a fixed-size state, not a KV cache",
    "Mamba2ForCausalLM": "a state-space model keeps a fixed-size state, not a KV cache",
    "MiniMaxM1ForCausalLM": "lightning (linear) attention layers keep a fixed-size state, not a KV cache",
    "Llama4ForConditionalGeneration": "chunked local attention and interleaved dense/MoE layers",
    "Llama4ForCausalLM": "chunked local attention and interleaved dense/MoE layers",
    "DeepseekV32ForCausalLM": "DeepSeek Sparse Attention adds an indexer cache the formulas do not count",
    "GPT2LMHeadModel": "a non-gated MLP (2 matrices, not 3)",
    "GPTNeoXForCausalLM": "a non-gated MLP (2 matrices, not 3)",
    "FalconForCausalLM": "a non-gated MLP (2 matrices, not 3)",
    "Starcoder2ForCausalLM": "a non-gated MLP (2 matrices, not 3)",
    "OPTForCausalLM": "a non-gated MLP (2 matrices, not 3)",
    "BloomForCausalLM": "a non-gated MLP (2 matrices, not 3)",
}

TEXT_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262208, "sliding_window_pattern": 6, "max_position_embeddings": 131072,
                    "tie_word_embeddings": True},
}
"""Fields a model type's config.json may leave to transformers' defaults (Gemma3TextConfig's __init__ defaults)."""

LAYER_KINDS = {"full_attention": "full", "sliding_attention": "sliding"}
"""config.json `layer_types` values llmctl sizes; others (linear_attention, chunked_attention, mamba) are refused."""


def _int(config: Mapping[str, Any], *keys: str, default: int | None = None) -> int | None:
    """The first of `keys` that holds a nonzero whole number; `default` when none does. A value that is not a
    number at all ("big", 1.5, 1e400) is refused naming the key: it would otherwise crash or size nonsense."""
    for key in keys:
        value = config.get(key)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
            raise InvalidModel(f"config.json: {key} {str(value)[:20]!r} is not a whole number; cannot size a plan for it")
        if value:
            return int(value)
    return default


def _merge_text_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Multimodal wrappers keep the language model under text_config; its fields win, quantization stays."""
    cfg = dict(config)
    text = cfg.get("text_config")
    if isinstance(text, Mapping) and "num_hidden_layers" in text:
        cfg = {**cfg, **TEXT_DEFAULTS.get(str(text.get("model_type")), {}), **text}
    return {**TEXT_DEFAULTS.get(str(cfg.get("model_type")), {}), **cfg}


def vision_params(config: Mapping[str, Any]) -> int:
    """A ViT/SigLIP vision tower (vision_config) served with the model: layers x (4 h^2 + 2 h I), 16-bit."""
    v = config.get("vision_config")
    if not isinstance(v, Mapping):
        return 0
    h, inter, layers = _int(v, "hidden_size", default=0), _int(v, "intermediate_size", default=0), \
        _int(v, "num_hidden_layers", default=0)
    return (layers or 0) * (4 * (h or 0) ** 2 + 2 * (h or 0) * (inter or 0))


def check_architecture(cfg: Mapping[str, Any], name: str) -> str:
    """The architecture name, or a PlanError saying why llmctl cannot size it."""
    archs = cfg.get("architectures")
    archs = [archs] if isinstance(archs, str) else archs if isinstance(archs, list) else None
    arch = str((archs or [cfg.get("model_type") or "unknown"])[0])
    if cfg.get("is_encoder_decoder"):
        raise PlanError(f"{name}: {arch} is an encoder-decoder model; llmctl plan sizes decoder-only models")
    if arch in UNSUPPORTED:
        raise PlanError(f"{name}: llmctl cannot size {arch}: {UNSUPPORTED[arch]}",
                        hint="plan a supported architecture, or size this one by hand")
    if arch not in SUPPORTED:
        raise PlanError(
            f"{name}: llmctl cannot size architecture {arch}: its parameter, KV and FLOP formulas are not modelled",
            hint="supported: " + ", ".join(sorted(a.removesuffix("ForCausalLM") for a in SUPPORTED)),
        )
    return arch


def layer_attention(cfg: Mapping[str, Any], layers: int, name: str) -> tuple[tuple[str, ...], int]:
    """(per-layer "full"/"sliding", window). Reads `layer_types` (gpt-oss, newer Gemma configs), Gemma 3's
    `sliding_window_pattern` (every Nth layer global), Gemma 2's alternation (even layers slide), and
    Mistral/Qwen's `sliding_window` (+ `use_sliding_window`, `max_window_layers`)."""
    window = _int(cfg, "sliding_window", default=0) or 0
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        unknown = sorted({str(t) for t in types if t not in LAYER_KINDS})
        if unknown:
            raise PlanError(f"{name}: layer types {', '.join(unknown)} keep no KV cache llmctl can size",
                            hint="llmctl sizes full_attention and sliding_attention layers")
        kinds = tuple(LAYER_KINDS[t] for t in types[:layers])
        return (kinds, window) if "sliding" in kinds and window else ((), 0)
    if not window:
        return (), 0
    model_type = str(cfg.get("model_type") or "")
    pattern = _int(cfg, "sliding_window_pattern", default=0) or 0
    if model_type.startswith("gemma3") and pattern:
        return tuple("full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers)), window
    if model_type.startswith("gemma2"):
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(layers)), window
    if cfg.get("use_sliding_window") is False or ("use_sliding_window" not in cfg and model_type.startswith("qwen")):
        return (), 0
    first = _int(cfg, "max_window_layers", default=0) if cfg.get("use_sliding_window") else 0
    return tuple("sliding" if i >= (first or 0) else "full" for i in range(layers)), window


def _moe_fields(cfg: Mapping[str, Any], inter: int) -> dict[str, int]:
    experts = _int(cfg, "num_experts", "n_routed_experts", "num_local_experts", default=0) or 0
    if not experts:
        return {}
    moe_inter = _int(cfg, "moe_intermediate_size", default=inter) or inter
    n_shared = _int(cfg, "n_shared_experts", default=0) or 0
    shared = n_shared * moe_inter or (_int(cfg, "shared_expert_intermediate_size", default=0) or 0)
    dense = _int(cfg, "first_k_dense_replace", default=0) or 0
    if not dense and isinstance(cfg.get("mlp_only_layers"), list):
        dense = len(cfg["mlp_only_layers"])
    return {
        "num_experts": experts,
        "experts_per_token": _int(cfg, "num_experts_per_tok", "num_experts_per_token", "experts_per_token",
                                  "moe_topk", default=0) or 0,
        "moe_intermediate_size": moe_inter,
        "shared_expert_intermediate_size": shared,
        "dense_layers": dense,
    }


def _mla_fields(cfg: Mapping[str, Any]) -> dict[str, int]:
    keys = ("kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
    return {k: _int(cfg, k, default=0) or 0 for k in keys}


def profile_from_config(
    config: Mapping[str, Any], *, name: str, serve_id: str, source: str, aliases: tuple[str, ...] = ()
) -> ModelProfile:
    """A Hugging Face `config.json` → ModelProfile. Pure; raises InvalidInput naming the missing field, or
    PlanError for an architecture llmctl cannot size."""
    cfg = _merge_text_config(config)
    required = {k: _int(cfg, k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size")}
    missing = [k for k, v in required.items() if not v]
    if missing:
        raise InvalidInput(f"{name}: config.json lacks {', '.join(missing)}; cannot size a plan for it")
    if "quantization_config" in config and not isinstance(config["quantization_config"], (Mapping, type(None))):
        raise InvalidModel(f"{name}: config.json's quantization_config is not an object")
    arch = check_architecture(cfg, name)
    layers, hidden, heads, vocab = (int(v or 0) for v in required.values())
    if not 1 <= layers <= MAX_LAYERS:  # before layer_attention walks them
        raise InvalidModel(f"{name}: num_hidden_layers {str(layers)[:20]} is not from 1 to {MAX_LAYERS}")
    inter = _int(cfg, "intermediate_size", "ffn_dim", default=4 * hidden) or 4 * hidden
    kinds, window = layer_attention(cfg, layers, name)
    return ModelProfile(
        name=name,
        serve_id=serve_id,
        source=source,
        architecture=arch,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=_int(cfg, "num_key_value_heads", "num_kv_heads", default=heads) or heads,
        head_dim=_int(cfg, "head_dim", default=hidden // heads) or hidden // heads,
        intermediate_size=inter,
        vocab_size=vocab,
        max_position_embeddings=_int(cfg, "max_position_embeddings", "max_sequence_length", default=4096) or 4096,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", str(cfg.get("model_type", "")).startswith("gemma"))),
        quant=quant_from_config(config if "quantization_config" in config else cfg),
        layer_attention=kinds,
        sliding_window=window,
        vision_params=vision_params(config),
        aliases=aliases,
        **_moe_fields(cfg, inter),
        **_mla_fields(cfg),
    )
