"""Test helpers for plans of llmctl's own models: a tiny safetensors model folder written by hand (the
safetensors format is an 8-byte header length, a JSON header and raw tensor bytes), packaged into the store
as a safetensors artifact by the real `package --safetensors-dir` (safetensors layers + the config archive)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from llmctl.oci.reference import Reference
from llmctl.settings import Settings

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 256,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
CONFIG_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json")


def safetensors_bytes(tensors: dict[str, tuple[int, ...]], seed: int = 0) -> bytes:
    """A valid safetensors file of BF16 tensors with the given shapes (deterministic bytes)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    for i, (name, shape) in enumerate(sorted(tensors.items())):
        n = 2
        for dim in shape:
            n *= dim
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [len(data), len(data) + n]}
        data += bytes((seed + i + j) % 251 for j in range(n))
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(data)


def read_safetensors_header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def make_model_folder(folder: Path, *, shards: int = 2) -> Path:
    """A sharded tiny Llama: config, tokenizer and generation files plus `shards` safetensors files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}))
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        (folder / name).write_bytes(safetensors_bytes({f"model.layers.{s}.mlp.up_proj.weight": (128, 64)}, seed=s))
    return folder


def store_safetensors_model(settings: Settings, folder: Path, ref: Reference) -> str:
    """The folder packaged as `llmctl package --safetensors-dir` does (Docker Model Runner's layout), tagged
    `ref`; returns the manifest digest."""
    from llmctl.api.package import PackageSpec, package

    return package(settings, str(ref), PackageSpec(safetensors_dir=folder)).digest
