"""Ollama's model options (Modelfile PARAMETERs, a request's `options`) as llama-server takes them.

Two kinds: sampling options travel with each request (`sampling_params`, renamed to llama-server's fields);
load-time options (context, threads, GPU layers, batch) are fixed when an engine starts (`load_params`, as
EngineOptions fields), and are range-checked first (`check_load_params`) because a pulled model or a request
could otherwise start an engine with an absurd context or thread count. Pure.
"""

from __future__ import annotations

from typing import Any, Mapping

from llmctl.errors import InvalidInput

# Ollama option -> llama-server field (the same names on /completion and /v1/chat/completions).
_SAMPLING = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "num_keep": "n_keep",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}
# llama-server's own names, passed through as they are (a gateway may forward them).
_PASSTHROUGH = frozenset({
    "n_predict", "max_tokens", "ignore_eos", "logit_bias", "grammar", "json_schema", "response_format",
    "dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n", "xtc_probability",
    "xtc_threshold", "top_n_sigma", "n_probs", "min_keep", "cache_prompt", "n_keep", "samplers",
})
# Fixed when the engine starts (EngineOptions), or no longer meaningful: never sent per request.
LOAD_PARAMETERS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "numa",
                             "use_mlock", "low_vram", "f16_kv", "vocab_only", "logits_all", "draft_num_predict"})
IGNORED_PARAMETERS = frozenset({"penalize_newline", "tfs_z"})


def sampling_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ollama options (PARAMETER names) -> llama-server request fields. Unknown names are dropped.

    `num_predict` becomes both `n_predict` and `max_tokens` (llama-server reads either); `stop` is always a
    list. Load-time options (num_ctx, num_thread, num_gpu...) are not per request; see `load_params`.
    """
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if key in _SAMPLING:
            out[_SAMPLING[key]] = value
        elif key == "num_predict":
            out["n_predict"] = out["max_tokens"] = int(value)
        elif key == "stop":
            stops = [value] if isinstance(value, str) else [str(s) for s in value]
            out["stop"] = [s for s in stops if s]
        elif key in _PASSTHROUGH:
            out[key] = value
    if "seed" in out:
        out["seed"] = int(out["seed"])
    return out


# The values a load-time option may take, whoever sets it (a request, a Modelfile PARAMETER, a pulled model):
# outside them it is a 400 / InvalidInput. 0 means "the default". What is in range is still clamped when an
# engine starts (`launch.clamp_load`): num_ctx to the model's trained context, num_batch to the context,
# num_thread to the CPUs.
LOAD_RANGES: dict[str, tuple[int, int]] = {
    "num_ctx": (0, 1 << 24), "num_batch": (0, 1 << 20), "num_thread": (0, 4096), "num_gpu": (-1, 1 << 20),
}


def check_load_params(params: Mapping[str, Any] | None, *, where: str = "") -> None:
    """InvalidInput for a load-time option that is not an integer in `LOAD_RANGES`."""
    for key, (lo, hi) in LOAD_RANGES.items():
        value = (params or {}).get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
            raise InvalidInput(f"{where}{key} must be an integer from {lo} to {hi}, got {shown}")


def load_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The load-time options among Ollama parameters, as EngineOptions field names. Values outside
    `LOAD_RANGES` are dropped (the defaults apply): a model pulled from anywhere cannot start an engine with
    a context of 10^18 tokens or a million threads."""
    p = {k: v for k, v in (params or {}).items() if k not in LOAD_RANGES or _in_range(k, v)}
    out: dict[str, Any] = {}
    if p.get("num_ctx"):
        out["ctx_size"] = int(p["num_ctx"])
    if p.get("num_thread"):
        out["threads"] = int(p["num_thread"])
    if p.get("num_gpu") is not None:
        out["gpu_layers"] = int(p["num_gpu"])
    if p.get("num_batch"):
        out["extra_args"] = ("-b", str(int(p["num_batch"])))
    return out


def _in_range(key: str, value: Any) -> bool:
    lo, hi = LOAD_RANGES[key]
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
