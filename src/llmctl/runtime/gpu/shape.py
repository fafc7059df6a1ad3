"""What the offload planner needs to know about a model: bytes per layer, the rest, and the KV cache size.

Read from the GGUF header (`llmctl.artifact.gguf_meta`): tensor byte sizes come from its tensor infos, so
nothing of the weights is loaded, and head counts give the f16 KV cache per token as llama.cpp allocates it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # the reader imports `gguf` (and numpy): loaded only when a shape is read
    from llmctl.artifact.gguf_meta import GgufInfo, TensorInfo

_BLOCK = re.compile(r"blk\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs from a GGUF."""

    layers: int  # repeating blocks (block_count)
    layer_bytes: tuple[int, ...]  # weights of each block
    other_bytes: int  # token embeddings, output layer, norms (non-repeating)
    kv_bytes_per_token: int  # K+V cache, all layers, f16
    n_vocab: int = 32000
    n_embd: int = 4096

    @property
    def weights(self) -> int:
        return sum(self.layer_bytes) + self.other_bytes

    @classmethod
    def from_kv(cls, kv: Mapping[str, Any], layer_bytes: Sequence[int] | None = None, other_bytes: int = 0,
                file_size: int | None = None) -> "ModelShape":
        arch = str(kv.get("general.architecture") or "llama")

        def get(key: str, default: Any = None) -> Any:
            v = kv.get(f"{arch}.{key}", default)
            if isinstance(v, (list, tuple)):  # per-layer arrays (e.g. head_count_kv): the largest
                v = max(v) if v else default
            return v

        layers = int(get("block_count", 0) or 0)
        if layers <= 0:
            raise ValueError(f"GGUF metadata has no {arch}.block_count")
        n_embd = int(get("embedding_length", 0) or 0)
        n_head = int(get("attention.head_count", 0) or 0) or 1
        n_head_kv = int(get("attention.head_count_kv", n_head) or n_head)
        k_len = int(get("attention.key_length", 0) or 0) or (n_embd // n_head if n_embd else 128)
        v_len = int(get("attention.value_length", 0) or 0) or k_len
        kv_per_token = layers * n_head_kv * (k_len + v_len) * 2  # f16 cache
        tokens = kv.get("tokenizer.ggml.tokens")
        n_vocab = int(getattr(tokens, "length", 0) or (len(tokens) if isinstance(tokens, (list, tuple)) else 0)
                      or get("vocab_size", 32000) or 32000)
        if layer_bytes is None:  # no tensor infos: the file split evenly, one layer's worth for the rest
            size = int(file_size or 0)
            each = size // (layers + 1)
            layer_bytes, other_bytes = [each] * layers, size - each * layers
        return cls(layers, tuple(int(x) for x in layer_bytes), int(other_bytes), kv_per_token, n_vocab, n_embd or 4096)

    @classmethod
    def from_gguf(cls, info: GgufInfo, file_size: int | None = None) -> "ModelShape":
        """From a read header; `file_size` sizes the layers only when the header lists no tensors."""
        layers, other = block_bytes(info.tensors)
        return cls.from_kv(info.kv, layers or None, other, file_size)


def block_bytes(tensors: Sequence[TensorInfo]) -> tuple[list[int], int]:
    """Bytes of each repeating block (`blk.N.*` tensors, by N) and bytes of everything else."""
    blocks: dict[int, int] = {}
    other = 0
    for t in tensors:
        m = _BLOCK.match(t.name)
        if m:
            blocks[int(m.group(1))] = blocks.get(int(m.group(1)), 0) + t.nbytes
        else:
            other += t.nbytes
    return [blocks[i] for i in sorted(blocks)], other


def model_shape(model: Any) -> ModelShape | None:
    """The shape of a stored model, over all its weights files (a split GGUF's shards each hold some of the
    tensors; the first holds the metadata); None when it cannot be read."""
    from llmctl.artifact.gguf_meta import read_gguf

    try:
        paths = [Path(p) for p in model.weights]
        infos = [read_gguf(p) for p in paths]
        layers, other = block_bytes([t for info in infos for t in info.tensors])
        return ModelShape.from_kv(infos[0].kv, layers or None, other, sum(p.stat().st_size for p in paths))
    except Exception:  # an unreadable model plans as "shape unknown", never fails the engine start
        return None
