"""KV cache arithmetic per GPU: head replication under TP, MLA's latent, and sliding-window layers.

- GQA splits KV heads over TP; when TP exceeds the KV-head count, vLLM and SGLang replicate them, so each rank
  holds ceil(kv_heads / TP) = 1 head (vLLM `QKVParallelLinear`: num_kv_head_replicas = TP / kv_heads).
- MLA (DeepSeek) caches one latent (kv_lora_rank + rope dims) per token and layer; TP does not split it: every
  TP rank keeps the whole latent, which is why DP attention pays off for these models.
- Sliding-window layers keep only the last `window` tokens of a sequence. vLLM's hybrid KV cache manager
  allocates exactly that for them (gpt-oss alternates 128-token windows with full layers; Gemma 3 has five
  1024-token local layers per global one). With KV connectors other than NixlConnector (LMCache, Mooncake) llmctl
  sizes sliding layers as full ones: only NIXL is documented to support the hybrid cache in P/D.
"""

from __future__ import annotations

from llmctl.plan.profiles import DTYPE_BYTES, ModelProfile, ceil_div


def kv_heads_per_rank(model: ModelProfile, tp: int) -> int:
    """KV heads one TP rank stores: kv_heads / TP, or 1 (replicated) when TP exceeds the KV-head count."""
    return max(1, model.num_kv_heads // tp)


def replication(model: ModelProfile, tp: int) -> int:
    """How many ranks hold a copy of each KV head (1 unless TP > kv_heads)."""
    return max(1, tp // model.num_kv_heads) if not model.is_mla else tp


def per_layer_bytes(model: ModelProfile, tp: int, kvdtype: str) -> int:
    """Bytes one token stores in one layer on one GPU."""
    if model.is_mla:
        return model.kv_elements_per_token_per_layer * DTYPE_BYTES[kvdtype]
    return 2 * kv_heads_per_rank(model, tp) * model.head_dim * DTYPE_BYTES[kvdtype]


def stage_layers(model: ModelProfile, pp: int) -> int:
    return ceil_div(model.num_layers, pp)


def full_share(model: ModelProfile, windowed: bool) -> float:
    """Share of layers that keep every token (1.0 without sliding windows or when windows are not honoured)."""
    if not windowed or not model.sliding_layers:
        return 1.0
    return 1.0 - model.sliding_layers / model.num_layers


def bytes_per_token(model: ModelProfile, tp: int, pp: int, kvdtype: str) -> float:
    """One GPU's KV bytes per token if every layer kept it (the full-attention rate)."""
    return float(stage_layers(model, pp) * per_layer_bytes(model, tp, kvdtype))


def sequence_bytes(model: ModelProfile, tp: int, pp: int, kvdtype: str, tokens: float, *, windowed: bool) -> float:
    """One GPU's KV for one sequence of `tokens`: full layers keep all, sliding layers min(tokens, window)."""
    full = full_share(model, windowed)
    kept = full * tokens + (1.0 - full) * min(tokens, model.sliding_window)
    return bytes_per_token(model, tp, pp, kvdtype) * kept


def whole_model_bytes_per_token(model: ModelProfile, kvdtype: str) -> int:
    """Whole-model KV per token at full attention: layers x 2 x kv_heads x head_dim x bytes, or the MLA latent."""
    return model.num_layers * model.kv_elements_per_token_per_layer * DTYPE_BYTES[kvdtype]
