"""Test helpers for plans of llmctl's own models: a tiny safetensors model folder written by hand (the
safetensors format is an 8-byte header length, a JSON header and raw tensor bytes) and that folder as a
safetensors artifact in Docker Model Runner's layout (safetensors layers + the vllm config archive)."""

from __future__ import annotations

import io
import json
import struct
import tarfile
from pathlib import Path

from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.reference import Reference
from llmctl.settings import Settings

CONFIG_ARCHIVE = "application/vnd.docker.ai.vllm.config.tar"
SAFETENSORS = "application/vnd.docker.ai.safetensors"

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


def config_archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in CONFIG_FILES:
            info = tarfile.TarInfo(name)
            data = (folder / name).read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def store_safetensors_model(settings: Settings, folder: Path, ref: Reference) -> str:
    """The folder as a safetensors artifact in the store, tagged `ref`; returns the manifest digest."""
    from llmctl.api.models import open_store

    store = open_store(settings)
    layers = []
    with store.writing():
        for path in sorted(folder.glob("*.safetensors")):
            w = store.put_bytes(path.read_bytes())
            layers.append(Descriptor(SAFETENSORS, w.digest, w.size, {mt.ANNOTATION_TITLE: path.name}))
        w = store.put_bytes(config_archive(folder))
        layers.append(Descriptor(CONFIG_ARCHIVE, w.digest, w.size, {mt.ANNOTATION_TITLE: "config.tar"}))
        size = sum(d.size for d in layers)
        config = json.dumps({"config": {"format": "safetensors", "architecture": "llama", "size": str(size)},
                             "descriptor": {"created": "2026-01-01T00:00:00Z"},
                             "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]}}).encode()
        c = store.put_bytes(config)
        manifest = Manifest(Descriptor(mt.MODEL_CONFIG_V01, c.digest, c.size), tuple(layers))
        return store.put_manifest(manifest, [ref]).digest
