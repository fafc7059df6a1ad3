"""Safetensors headers and Hugging Face config.json facts, without loading a tensor.

A safetensors file starts with an 8-byte little-endian header length N and N bytes of JSON: one entry per
tensor (`dtype`, `shape`, `data_offsets` into the data that follows) plus an optional `__metadata__` map of
strings. Reading that header is enough to count parameters and find the dtypes; `safetensors.safe_open`
would do the same but needs the package (and numpy or torch) where llmctl only moves bytes.

The config facts follow Docker Model Runner's `format/safetensors.go` where it is right and go further where
it is not: parameters are summed over every shard (DMR counts the first one only), and the quantization is
`quantization_config` when config.json has one (an FP8 or AWQ checkpoint stores its scales as BF16/F32
tensors, so the dtypes alone would misreport it).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from llmctl.errors import InvalidModel

# The safetensors format caps its header at 100 MB (the reference implementation refuses larger ones with
# HeaderTooLarge); a length beyond that is a corrupt or hostile file, never a model.
MAX_HEADER = 100_000_000
# config.json and friends are a few KB; DMR reads at most 100 MiB of them. Anything larger is not a config.
MAX_CONFIG_JSON = 100 * 1024 * 1024
# Hugging Face config.json keys that hold the context length, in llama.cpp's convert_hf_to_gguf.py order
# (which DMR follows too).
CONTEXT_KEYS = ("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
                "model_max_length")


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # data_offsets, relative to the end of the header
    end: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsInfo:
    path: Path
    header_size: int  # N: the JSON header's length; the data starts at 8 + N
    metadata: dict[str, str]
    tensors: tuple[TensorEntry, ...]

    @property
    def parameter_count(self) -> int:
        return sum(t.elements for t in self.tensors)

    def elements_by_dtype(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for t in self.tensors:
            counts[t.dtype] += t.elements
        return counts


def read_safetensors(path: Path) -> SafetensorsInfo:
    """Read and check one safetensors file's header; the tensor data is never read."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InvalidModel(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidModel(f"{path}: is a directory, expected a safetensors file") from None
    with f:
        return read_safetensors_at(f, os.fstat(f.fileno()).st_size, path)


def read_safetensors_at(f: BinaryIO, size: int, path: Path) -> SafetensorsInfo:
    """The header of the `size`-byte safetensors file that starts at `f`'s position: a file, or a member of a
    tar layer (modctl's default layers) with `f` at its data; `path` names it in errors."""
    head = f.read(8)
    if len(head) < 8:
        raise InvalidModel(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    n = int.from_bytes(head, "little")
    if n < 2 or n > MAX_HEADER or 8 + n > size:
        raise InvalidModel(f"{path}: not a safetensors file (header length {n} for a {size}-byte file)")
    raw = f.read(n)
    if len(raw) < n:
        raise InvalidModel(f"{path}: truncated safetensors header")
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidModel(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InvalidModel(f"{path}: not a safetensors file (its header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise InvalidModel(f"{path}: __metadata__ is not a JSON object")
    tensors = tuple(_tensor(path, name, entry) for name, entry in header.items())
    data = size - 8 - n
    for t in tensors:
        if t.end > data:
            raise InvalidModel(f"{path}: truncated: tensor {t.name!r} ends at byte {t.end} of {data} data bytes")
    return SafetensorsInfo(path, n, {str(k): str(v) for k, v in meta.items()}, tensors)


def _tensor(path: Path, name: str, entry: Any) -> TensorEntry:
    bad = f"{path}: tensor {name!r} has a malformed header entry"
    if not isinstance(entry, dict):
        raise InvalidModel(bad)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
        raise InvalidModel(bad)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in [*shape, *offsets]):
        raise InvalidModel(bad)
    if offsets[0] > offsets[1]:
        raise InvalidModel(bad)
    return TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def read_config_json(path: Path) -> dict[str, Any]:
    """A Hugging Face config.json (or index file) as a dict; InvalidModel when it is not one."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_JSON:
            raise InvalidModel(f"{path}: {size} bytes is too large for a model config")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise InvalidModel(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidModel(f"{path}: not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidModel(f"{path}: not a JSON object")
    return data


# -- facts from config.json (pure) -------------------------------------------------------------------
def hf_architecture(config: dict[str, Any]) -> str | None:
    """`architectures[0]` (the class vLLM and transformers load), else `model_type`."""
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        return archs[0]
    model_type = config.get("model_type")
    return model_type if isinstance(model_type, str) and model_type else None


def hf_context_length(config: dict[str, Any]) -> int | None:
    """The context length, looked for in the config, then in its text model's (multimodal configs)."""
    for cfg in (config, config.get("text_config"), config.get("llm_config")):
        if not isinstance(cfg, dict):
            continue
        for key in CONTEXT_KEYS:
            value = cfg.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
                return value
    return None


def hf_quantization(config: dict[str, Any]) -> str | None:
    """`quantization_config` as a short label: `fp8`, `awq-int4`, `gptq-int8`, `bitsandbytes-int4`..."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        return None
    method = qc.get("quant_method") or qc.get("quant_type") or "quantized"
    bits = qc.get("bits") or qc.get("w_bit") or qc.get("weight_bits")
    if bits is None and qc.get("load_in_4bit"):
        bits = 4
    elif bits is None and qc.get("load_in_8bit"):
        bits = 8
    label = str(method)
    return f"{label}-int{bits}" if isinstance(bits, int) and not isinstance(bits, bool) else label


def dominant_dtype(infos: list[SafetensorsInfo]) -> str | None:
    """The dtype that holds most parameters (a BF16 model with a few F32 norms is BF16)."""
    counts: Counter[str] = Counter()
    for info in infos:
        counts.update(info.elements_by_dtype())
    if not counts:
        return None
    return max(sorted(counts), key=lambda d: counts[d])


@dataclass(frozen=True)
class SafetensorsFacts:
    """What a config says about safetensors weights: the `config` fields Docker Model Runner writes."""

    parameter_count: int
    quantization: str | None
    architecture: str | None
    context_size: int | None
    strings: dict[str, str] = field(default_factory=dict)  # DMR's `config.safetensors` map


def safetensors_facts(infos: list[SafetensorsInfo], config: dict[str, Any] | None) -> SafetensorsFacts:
    config = config or {}
    meta = infos[0].metadata if infos else {}
    strings = {**meta, "tensor_count": str(sum(len(i.tensors) for i in infos))}
    return SafetensorsFacts(
        parameter_count=sum(i.parameter_count for i in infos),
        quantization=hf_quantization(config) or dominant_dtype(infos),
        architecture=hf_architecture(config) or meta.get("architecture"),
        context_size=hf_context_length(config),
        strings=strings,
    )
