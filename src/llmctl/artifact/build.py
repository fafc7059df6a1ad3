"""Pure construction of model configs and manifests in Docker Model Runner's format.

The config carries both what model-spec publishes (`files[]`, `descriptor.createdAt`) and what Docker Model
Runner's code reads today (`rootfs.diff_ids`, `descriptor.created`, flat `architecture`/`parameters`/
`quantization`/`context_size`), so both readers accept our artifacts. Layers are uncompressed single files,
so a layer's diffID is its digest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from llmctl.artifact.gguf_meta import GgufInfo
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest


@dataclass(frozen=True)
class ConfigFacts:
    """What the config says about the weights; from GGUF metadata, or carried over from a base model."""

    format: str = "gguf"
    format_version: str = "3"
    architecture: str | None = None
    parameters: str | None = None
    quantization: str | None = None
    context_size: int | None = None
    gguf: dict[str, str] | None = None

    @classmethod
    def from_gguf(cls, info: GgufInfo) -> "ConfigFacts":
        return cls(
            format="gguf",
            format_version=str(info.version),
            architecture=info.architecture,
            parameters=info.parameter_label,
            quantization=info.quantization,
            context_size=info.context_length,
            gguf=info.config_strings(),
        )


def now_rfc3339() -> str:
    """Creation time, honouring SOURCE_DATE_EPOCH so builds can be reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = int(epoch) if epoch and epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def build_config(facts: ConfigFacts, layers: list[Descriptor], created: str | None = None) -> bytes:
    created = created or now_rfc3339()
    weights_size = sum(d.size for d in layers if mt.LAYER_ROLES.get(d.media_type) == mt.ROLE_WEIGHTS)
    config: dict[str, Any] = {"format": facts.format, "format_version": facts.format_version}
    for key in ("architecture", "parameters", "quantization"):
        value = getattr(facts, key)
        if value is not None:
            config[key] = value
    config["size"] = str(weights_size)
    if facts.context_size is not None:
        config["context_size"] = facts.context_size
    if facts.gguf:
        config["gguf"] = dict(facts.gguf)
    document = {
        "config": config,
        "descriptor": {"createdAt": created, "created": created},
        "files": [{"diffID": d.digest, "type": d.media_type} for d in layers],
        "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
    }
    return json.dumps(document, indent=2).encode()


def build_manifest(config: Descriptor, layers: list[Descriptor]) -> Manifest:
    return Manifest(config=config, layers=tuple(layers), media_type=mt.OCI_MANIFEST)


def layer(media_type: str, digest: str, size: int, title: str | None = None) -> Descriptor:
    annotations = {}
    if title:
        annotations = {mt.ANNOTATION_TITLE: title, mt.ANNOTATION_FILEPATH: title}
    return Descriptor(media_type, digest, size, annotations)


def params_blob(parameters: dict[str, Any]) -> bytes:
    """Ollama's params layer payload: a JSON object, lists for repeatable parameters."""
    return json.dumps(parameters, sort_keys=True).encode()


def messages_blob(messages: list[dict[str, str]]) -> bytes:
    return json.dumps(messages).encode()


def facts_from_config(raw: dict[str, Any]) -> ConfigFacts:
    """Read facts back from any config we understand: ours, DMR v0.1/v0.2, Ollama's, CNCF ModelPack."""
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    if cfg:
        gguf = cfg.get("gguf") if isinstance(cfg.get("gguf"), dict) else {}
        ctx = cfg.get("context_size") or cfg.get("contextSize")
        return ConfigFacts(
            format=str(cfg.get("format") or "gguf"),
            format_version=str(cfg.get("format_version") or "3"),
            architecture=cfg.get("architecture") or gguf.get("general.architecture"),
            parameters=cfg.get("parameters") or cfg.get("paramSize") or gguf.get("parameter_count"),
            quantization=cfg.get("quantization") or cfg.get("precision") or gguf.get("quantization"),
            context_size=int(ctx) if ctx else None,
            gguf={str(k): str(v) for k, v in gguf.items()} or None,
        )
    # Ollama: {"model_format": "gguf", "model_family": "llama", "model_type": "8B", "file_type": "Q4_0"}
    return ConfigFacts(
        format=str(raw.get("model_format") or "gguf"),
        architecture=raw.get("model_family"),
        parameters=raw.get("model_type"),
        quantization=raw.get("file_type"),
    )
