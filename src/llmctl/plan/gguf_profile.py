"""GGUF metadata → ModelProfile, for models stored in llmctl's own store (llama.cpp's format).

GGUF is what llmctl stores for llama.cpp; the plan sizes the same architecture for vLLM/SGLang from its 16-bit
Hugging Face checkpoint (or at `--dtype fp8`), so quantized GGUF bytes do not enter the arithmetic — the
parameter count does. Only architectures the formulas model are accepted (the GGUF names of hfconfig.SUPPORTED).
"""

from __future__ import annotations

from typing import Any

from llmctl.errors import InvalidInput, PlanError
from llmctl.plan.profiles import ModelProfile

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
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidInput("GGUF metadata lacks general.architecture")
    if arch not in SUPPORTED:
        raise PlanError(f"llmctl cannot size GGUF architecture {arch!r} for vLLM/SGLang",
                        hint="supported: " + ", ".join(sorted(SUPPORTED)))

    def get(key: str, default: Any = None) -> Any:
        value = _gguf_scalar(kv.get(f"{arch}.{key}"))
        return default if value is None else value

    layers = get("block_count")
    hidden = get("embedding_length")
    heads = get("attention.head_count")
    if not layers or not hidden or not heads:
        raise InvalidInput(f"GGUF metadata for {arch} lacks block_count, embedding_length or attention.head_count")
    layers, hidden, heads = int(layers), int(hidden), int(heads)
    vocab = get("vocab_size")
    if not vocab:
        tokens = kv.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, (list, tuple)) else 32000
    experts = int(get("expert_count", 0) or 0)
    ffn = int(get("feed_forward_length", 4 * hidden) or 4 * hidden)
    moe_ffn = int(get("expert_feed_forward_length", ffn) or ffn) if experts else 0
    shared = 0
    if experts:
        shared = int(get("expert_shared_count", 0) or 0) * int(get("expert_shared_feed_forward_length", moe_ffn) or moe_ffn)
    kv_lora = int(get("attention.kv_lora_rank", 0) or 0)
    key_len = int(get("attention.key_length", hidden // heads) or hidden // heads)
    rope = int(get("rope.dimension_count", 0) or 0) if kv_lora else 0
    window = int(get("attention.sliding_window", 0) or 0)
    name = str(kv.get("general.name") or kv.get("general.basename") or arch)
    repo = kv.get("general.source.huggingface.repository") or kv.get("general.base_model.0.repo_url")
    serve_id = str(repo).removeprefix("https://huggingface.co/") if repo else name
    kinds = _sliding(arch, layers, window)
    return ModelProfile(
        name=name,
        serve_id=serve_id,
        source="gguf",
        architecture=arch,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=int(get("attention.head_count_kv", heads) or heads),
        head_dim=key_len if not kv_lora else hidden // heads,
        intermediate_size=ffn,
        vocab_size=int(vocab),
        max_position_embeddings=int(get("context_length", 4096) or 4096),
        tie_word_embeddings=arch.startswith("gemma"),
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
        layer_attention=kinds,
        sliding_window=window if kinds else 0,
        parameter_count_override=int(parameter_count) if parameter_count else None,
    )
