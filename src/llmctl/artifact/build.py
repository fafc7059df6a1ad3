"""Pure construction of model configs and manifests in Docker Model Runner's format.

The config is what Docker Model Runner's own builder writes (`pkg/distribution/types.ConfigFile`): `config`
(format, quantization, parameters, architecture, size, the `gguf`/`safetensors` string maps, context_size),
`descriptor.created` and `rootfs.diff_ids`. Nothing else: DMR's client treats a config with
`descriptor.createdAt` (model-spec's published spelling) as a CNCF ModelPack config and then reads none of
its fields, so writing both spellings cost DMR users the parameters, size and context length. Readers accept
every variant (`facts_from_config`). Layers are uncompressed single files, so a layer's diffID is its digest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest

if TYPE_CHECKING:  # gguf_meta brings gguf and numpy (~0.1 s): list and show read facts from the config
    from llmctl.artifact.gguf_meta import GgufInfo
    from llmctl.artifact.safetensors_meta import SafetensorsFacts


@dataclass(frozen=True)
class ConfigFacts:
    """What the config says about the weights; from GGUF metadata, safetensors headers, or a base model."""

    format: str = "gguf"
    format_version: str | None = None  # read from model-spec configs; DMR's builder writes none
    architecture: str | None = None
    parameters: str | None = None
    quantization: str | None = None
    context_size: int | None = None
    gguf: dict[str, str] | None = None
    safetensors: dict[str, str] | None = None

    @classmethod
    def from_gguf(cls, info: GgufInfo) -> "ConfigFacts":
        return cls(
            format=mt.FORMAT_GGUF,
            format_version=str(info.version),
            architecture=info.architecture,
            parameters=info.parameter_label,
            quantization=info.quantization,
            context_size=info.context_length,
            gguf=info.config_strings(),
        )

    @classmethod
    def from_safetensors(cls, facts: "SafetensorsFacts") -> "ConfigFacts":
        from llmctl.artifact.gguf_meta import format_parameters

        return cls(
            format=mt.FORMAT_SAFETENSORS,
            architecture=facts.architecture,
            parameters=format_parameters(facts.parameter_count),
            quantization=facts.quantization,
            context_size=facts.context_size,
            safetensors=dict(facts.strings),
        )


def rfc3339(epoch: float | None = None) -> str:
    """A creation time as configs carry it: `epoch` (Settings.source_date_epoch, for reproducible builds), else
    now. The caller passes it in: this module reads no environment."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))


def build_config(facts: ConfigFacts, layers: list[Descriptor], created: str | None = None) -> bytes:
    """The config blob, field for field what Docker Model Runner's builder writes (and in its order)."""
    created = created or rfc3339()
    weights_size = sum(d.size for d in layers if mt.LAYER_ROLES.get(d.media_type) == mt.ROLE_WEIGHTS)
    config: dict[str, Any] = {"format": facts.format}
    for key in ("quantization", "parameters", "architecture"):
        value = getattr(facts, key)
        if value:
            config[key] = value
    config["size"] = str(weights_size)
    if facts.gguf:
        config["gguf"] = dict(facts.gguf)
    if facts.safetensors:
        config["safetensors"] = dict(facts.safetensors)
    if facts.context_size is not None:
        config["context_size"] = facts.context_size
    document = {
        "config": config,
        "descriptor": {"created": created},
        "rootfs": {"type": "rootfs", "diff_ids": [d.digest for d in layers]},
    }
    return json.dumps(document, indent=2).encode()


def is_modelpack_config(raw: bytes | str) -> bool:
    """Docker Model Runner's `modelpack.IsModelPackConfig`: how DMR decides which reader a config gets.

    A config with `config.paramSize`, `descriptor.createdAt` or a top-level `modelfs` is read as CNCF
    ModelPack (`paramSize`, no `parameters`/`context_size`/`size`); anything else as DMR's own. Configs
    llmctl writes must come out False; llmctl's own reader does not depend on the answer.
    """
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(parsed, dict):
        return False
    config = parsed.get("config")
    if isinstance(config, dict) and "paramSize" in config:
        return True
    descriptor = parsed.get("descriptor")
    if isinstance(descriptor, dict) and "createdAt" in descriptor:
        return True
    return "modelfs" in parsed


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
    """Read facts back from any config we understand: DMR's (ours, v0.1/v0.2, earlier llmctl configs with both
    `created` and `createdAt`), model-spec's example (`gguf.architecture`...), CNCF ModelPack, Ollama's."""
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    if cfg:
        gguf = _strings(cfg.get("gguf"))
        st = _strings(cfg.get("safetensors"))
        arch = _text(cfg.get("architecture")) or gguf.get("general.architecture") or gguf.get("architecture")
        gguf_arch = gguf.get("general.architecture") or gguf.get("architecture")
        ctx = _int(cfg.get("context_size")) or _int(cfg.get("contextSize"))
        if ctx is None and gguf_arch:
            ctx = _int(gguf.get(f"{gguf_arch}.context_length"))
        fmt = _text(cfg.get("format")) or ("safetensors" if st else "gguf")
        return ConfigFacts(
            format=fmt.lower(),
            format_version=_text(cfg.get("format_version")),
            architecture=arch,
            parameters=_text(cfg.get("parameters")) or _text(cfg.get("paramSize")) or gguf.get("parameter_count"),
            quantization=_text(cfg.get("quantization")) or _text(cfg.get("precision")) or gguf.get("quantization"),
            context_size=ctx,
            gguf=gguf or None,
            safetensors=st or None,
        )
    # Ollama: {"model_format": "gguf", "model_family": "llama", "model_type": "8B", "file_type": "Q4_0"}
    return ConfigFacts(
        format=str(raw.get("model_format") or "gguf"),
        architecture=_text(raw.get("model_family")),
        parameters=_text(raw.get("model_type")),
        quantization=_text(raw.get("file_type")),
    )


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value) else None


def _int(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
