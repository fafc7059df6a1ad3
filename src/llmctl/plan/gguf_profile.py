"""GGUF metadata → ModelProfile, for models stored in llmctl's own store (llama.cpp's format).

GGUF is what llmctl stores for llama.cpp; the plan sizes the same architecture for vLLM/SGLang from its 16-bit
Hugging Face checkpoint (or at `--dtype fp8`), so quantized GGUF bytes do not enter the arithmetic — the
parameter count does. Only architectures the formulas model are accepted (the GGUF names of hfconfig.SUPPORTED).
"""

from __future__ import annotations

import math
from typing import Any

from llmctl.errors import InvalidInput, InvalidModel, PlanError
from llmctl.plan.profiles import MAX_LAYERS, ModelProfile

SUPPORTED = {"llama", "mistral", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "deepseek2", "gemma2", "gemma3",
             "gpt-oss", "phi3", "granite", "olmo", "olmo2", "glm4moe"}
"""llama.cpp architecture names (general.architecture) of the families llmctl sizes; Mixtral is "llama"."""

SLIDING = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2}
"""Architectures whose GGUF gives a sliding window: every Nth layer is global (llama.cpp's swa pattern)."""


def _gguf_scalar(value: Any) -> Any:
    """GGUF allows per-layer arrays for head counts and FFN widths; the widest layer sizes memory."""
    if isinstance(value, (list, tuple)):
        nums = [v for v in value if isinstance(v, (int, float))]
        return max(nums) if nums else None
    return value


def _sliding(arch: str, layers: int, window: int) -> tuple[str, ...]:
    every = SLIDING.get(arch, 0)
    if not window or not every:
        return ()
    return tuple("full" if (i + 1) % every == 0 else "sliding" for i in range(layers))


def profile_from_gguf(kv: dict[str, object], parameter_count: int | None) -> ModelProfile:
    """GGUF key/values (`{arch}.block_count`, `{arch}.attention.head_count`, …) → ModelProfile. Pure."""
    arch = _architecture(kv)
    keys = _Keys(kv, arch)
    layers, hidden, heads = keys.shape()
    if not 1 <= layers <= MAX_LAYERS:  # before _sliding walks them
        raise InvalidModel(f"GGUF metadata {arch}.block_count {str(layers)[:20]} is not from 1 to {MAX_LAYERS}")
    ffn = keys.integer("feed_forward_length", 4 * hidden)
    window = keys.integer("attention.sliding_window", 0)
    kinds = _sliding(arch, layers, window)
    name = str(kv.get("general.name") or kv.get("general.basename") or arch)
    repo = kv.get("general.source.huggingface.repository") or kv.get("general.base_model.0.repo_url")
    return ModelProfile(
        name=name,
        serve_id=str(repo).removeprefix("https://huggingface.co/") if repo else name,
        source="gguf",
        architecture=arch,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=keys.integer("attention.head_count_kv", heads),
        intermediate_size=ffn,
        vocab_size=_vocab_size(kv, keys),
        max_position_embeddings=keys.integer("context_length", 4096),
        tie_word_embeddings=arch.startswith("gemma"),
        layer_attention=kinds,
        sliding_window=window if kinds else 0,
        parameter_count_override=int(parameter_count) if parameter_count else None,
        **_experts(keys, ffn),
        **_attention_heads(keys, hidden, heads),
    )


def _architecture(kv: dict[str, object]) -> str:
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidInput("GGUF metadata lacks general.architecture")
    if arch not in SUPPORTED:
        raise PlanError(f"llmctl cannot size GGUF architecture {arch!r} for vLLM/SGLang",
                        hint="supported: " + ", ".join(sorted(SUPPORTED)))
    return arch


class _Keys:
    """The `{arch}.*` keys of a GGUF, per-layer arrays read as their widest layer."""

    def __init__(self, kv: dict[str, object], arch: str) -> None:
        self.kv, self.arch = kv, arch

    def get(self, key: str, default: Any = None) -> Any:
        """The key's value (a number: GGUF types are the file's word, and a string or NaN there is refused)."""
        value = _gguf_scalar(self.kv.get(f"{self.arch}.{key}"))
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidModel(f"GGUF metadata {self.arch}.{key} {str(value)[:20]!r} is not a number")
        return value

    def integer(self, key: str, default: int) -> int:
        """The key as an integer; `default` when it is missing or 0."""
        return int(self.get(key, default) or default)

    def shape(self) -> tuple[int, int, int]:
        """(layers, hidden size, attention heads): what every profile needs."""
        layers, hidden, heads = self.get("block_count"), self.get("embedding_length"), self.get("attention.head_count")
        if not layers or not hidden or not heads:
            raise InvalidInput(f"GGUF metadata for {self.arch} lacks block_count, embedding_length or "
                               f"attention.head_count")
        return int(layers), int(hidden), int(heads)


def _vocab_size(kv: dict[str, object], keys: _Keys) -> int:
    vocab = keys.get("vocab_size")
    if not vocab:
        tokens = kv.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, (list, tuple)) else 32000
    return int(vocab)


def _experts(keys: _Keys, ffn: int) -> dict[str, int]:
    """The mixture-of-experts fields (all 0 for a dense model)."""
    experts = keys.integer("expert_count", 0)
    if not experts:
        return {"num_experts": 0, "experts_per_token": 0, "moe_intermediate_size": 0,
                "shared_expert_intermediate_size": 0, "dense_layers": 0}
    moe_ffn = keys.integer("expert_feed_forward_length", ffn)
    return {
        "num_experts": experts,
        "experts_per_token": keys.integer("expert_used_count", 0),
        "moe_intermediate_size": moe_ffn,
        "shared_expert_intermediate_size": (keys.integer("expert_shared_count", 0)
                                            * keys.integer("expert_shared_feed_forward_length", moe_ffn)),
        "dense_layers": keys.integer("leading_dense_block_count", 0),
    }


def _attention_heads(keys: _Keys, hidden: int, heads: int) -> dict[str, int]:
    """Head sizes, and the multi-head latent attention (MLA: DeepSeek's kv_lora_rank) fields."""
    key_len = keys.integer("attention.key_length", hidden // heads)
    kv_lora = keys.integer("attention.kv_lora_rank", 0)
    rope = keys.integer("rope.dimension_count", 0) if kv_lora else 0
    return {
        "head_dim": key_len if not kv_lora else hidden // heads,
        "kv_lora_rank": kv_lora,
        "q_lora_rank": keys.integer("attention.q_lora_rank", 0),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": (key_len - rope) if kv_lora else 0,
        "v_head_dim": keys.integer("attention.value_length", 0) if kv_lora else 0,
    }
