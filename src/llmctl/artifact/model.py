"""A stored model resolved into what the runtime and `show` need: files on disk plus Modelfile parts.

Reads every artifact variant we accept: ours, Docker Model Runner's v0.1/v0.2 configs (GGUF or safetensors),
Ollama's `application/vnd.ollama.image.*` layers and CNCF ModelPack manifests. Layer meaning comes from
`mediatypes.LAYER_ROLES`, with the file path annotation deciding for generic file layers. Facts a config
lacks (model-spec's example has no context length) are read from the GGUF header of the local weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmctl.artifact.build import ConfigFacts, facts_from_config
from llmctl.artifact.layer_files import find_config_json, layer_path, tar_member
from llmctl.errors import IntegrityError, InvalidInput, InvalidModel
from llmctl.modelfile import Message
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference


@dataclass(frozen=True)
class Model:
    reference: Reference
    digest: str
    manifest: Manifest
    config: dict[str, Any]
    facts: ConfigFacts
    weights: tuple[Path, ...]
    adapters: tuple[Path, ...] = ()
    projector: Path | None = None
    chat_template: str | None = None
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: tuple[Message, ...] = ()
    licenses: tuple[str, ...] = ()
    created: str | None = None
    format: str = mt.FORMAT_GGUF  # of the weights: "gguf" or "safetensors"

    @property
    def id(self) -> str:
        """Short id, as `docker images` and `ollama list` show: 12 hex digits of the manifest digest."""
        return self.digest.split(":", 1)[1][:12]

    @property
    def size(self) -> int:
        """Bytes of all blobs of this model (manifest, config and layers)."""
        return sum(d.size for d in self.manifest.blobs())

    def role_layers(self, role: str) -> list[Descriptor]:
        return [d for d in self.manifest.layers if layer_role(d) == role]

    def require_gguf(self, name: str | None = None) -> None:
        """Refuse, in one line, to hand safetensors weights to llama.cpp (InvalidModel: exit 4, HTTP 400).

        `name` is the model as the caller named it (the reference's short form without one)."""
        name = name or self.reference.short()
        if self.format != mt.FORMAT_GGUF:
            raise InvalidModel(
                f"model {name} is {self.format}: llama.cpp serves GGUF; plan it for vLLM/SGLang (`llmctl plan "
                f"{name}`) or export its folder (`llmctl export {name} DIR`), or pull a GGUF build of it")
        if not self.weights:
            raise InvalidModel(f"model {name} keeps its weights in tar layers; `llmctl export {name} DIR` unpacks "
                               f"them for an engine")


LICENSE_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE")
GENERIC_TYPES = (mt.DMR_MODEL_FILE, mt.CNCF_WEIGHT_RAW, mt.CNCF_DOC, mt.CNCF_CODE)


def layer_role(desc: Descriptor) -> str | None:
    role = mt.LAYER_ROLES.get(desc.media_type)
    if role or desc.media_type not in GENERIC_TYPES:
        return role
    path = layer_path(desc)
    if desc.media_type == mt.CNCF_WEIGHT_RAW and not path:
        return mt.ROLE_WEIGHTS  # ModelPack weights without a path: the config's format says which
    if desc.media_type in (mt.DMR_MODEL_FILE, mt.CNCF_WEIGHT_RAW) and _path_format(path):
        return mt.ROLE_WEIGHTS
    if desc.media_type != mt.CNCF_CODE and Path(path).name.upper().startswith(LICENSE_NAMES):
        return mt.ROLE_LICENSE
    return mt.ROLE_FILE if path else None


def _path_format(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(".gguf"):
        return mt.FORMAT_GGUF
    if lower.endswith(".safetensors"):
        return mt.FORMAT_SAFETENSORS
    return None


def weight_format(desc: Descriptor, config_format: str | None = None) -> str | None:
    """GGUF or safetensors, from the media type, else the path annotation, else the config's `format`."""
    return mt.WEIGHT_FORMATS.get(desc.media_type) or _path_format(layer_path(desc)) or config_format


def load(store: Store, ref: Reference) -> Model:
    """Resolve `ref` in the store into a Model. Raises NotFound, or IntegrityError for missing blobs."""
    desc = store.resolve(ref)
    manifest = store.manifest(desc)
    config = _config(store, manifest, ref)
    facts = facts_from_config(config)
    parts = _read_layers(store, ref, manifest, facts.format)
    weight_format_ = _one_format(ref, manifest, parts.formats)
    if weight_format_ == mt.FORMAT_GGUF:
        facts = _with_gguf_header(facts, parts.weights)
    else:
        facts = _with_safetensors_headers(facts, parts.weights, store, manifest, ref.short())
    descriptor = config.get("descriptor") if isinstance(config.get("descriptor"), dict) else {}
    return Model(
        reference=ref,
        digest=desc.digest,
        manifest=manifest,
        config=config,
        facts=facts,
        weights=tuple(parts.weights),
        adapters=tuple(parts.adapters),
        projector=parts.projector,
        chat_template=parts.texts.get(mt.ROLE_CHAT_TEMPLATE),
        template=parts.texts.get(mt.ROLE_TEMPLATE),
        system=parts.texts.get(mt.ROLE_SYSTEM),
        parameters=parts.parameters,
        messages=tuple(parts.messages),
        licenses=tuple(parts.licenses),
        created=descriptor.get("created") or descriptor.get("createdAt") or config.get("created"),
        format=weight_format_,
    )


def _config(store: Store, manifest: Manifest, ref: Reference) -> dict[str, Any]:
    """The config blob as a JSON object ({} for an empty blob or one that is not an object)."""
    try:
        config = json.loads(store.read_blob(manifest.config.digest)) if manifest.config.size else {}
    except ValueError as exc:
        raise IntegrityError(f"{ref.short()}: config blob is not JSON: {exc}") from None
    return config if isinstance(config, dict) else {}


# Layers whose text is the Model's field of that role; a later layer of the same role wins.
TEXT_ROLES = (mt.ROLE_CHAT_TEMPLATE, mt.ROLE_TEMPLATE, mt.ROLE_SYSTEM)


@dataclass
class _Parts:
    """What a manifest's layers hold: blob paths for the files an engine opens, contents for the rest."""

    weights: list[Path] = field(default_factory=list)
    formats: set[str | None] = field(default_factory=set)  # of the weights layers
    adapters: list[Path] = field(default_factory=list)
    projector: Path | None = None
    licenses: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # TEXT_ROLES -> text
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)


def _read_layers(store: Store, ref: Reference, manifest: Manifest, config_format: str | None) -> _Parts:
    parts = _Parts()

    def text(d: Descriptor) -> str:
        return store.read_blob(d.digest).decode("utf-8", errors="replace")

    def path(d: Descriptor) -> Path:
        p = store.blob_path(d.digest)
        if not p.exists():
            raise IntegrityError(f"{ref.short()}: blob {d.digest} is missing (run `llmctl verify`)")
        return p

    for d in manifest.layers:
        role = layer_role(d)
        if role == mt.ROLE_WEIGHTS:
            parts.weights.append(path(d))
            parts.formats.add(weight_format(d, config_format))
        elif d.media_type == mt.CNCF_WEIGHT_TAR:  # modctl's default: the weights file inside a tar
            parts.formats.add(weight_format(d, config_format))
        elif role == mt.ROLE_ADAPTER:
            parts.adapters.append(path(d))
        elif role == mt.ROLE_PROJECTOR:
            parts.projector = path(d)
        elif role == mt.ROLE_LICENSE:
            parts.licenses.append(text(d))
        elif role in TEXT_ROLES:
            parts.texts[role] = text(d)
        elif role == mt.ROLE_PARAMS:
            parts.parameters = _json_layer(store, d, dict, ref)
        elif role == mt.ROLE_MESSAGES:
            raw = _json_layer(store, d, list, ref)
            parts.messages = [Message(str(m.get("role", "")), str(m.get("content", ""))) for m in raw
                              if isinstance(m, dict)]
    return parts


def _one_format(ref: Reference, manifest: Manifest, formats: set[str | None]) -> str:
    if not formats:
        raise InvalidModel(f"{ref.short()} has no weights layer, GGUF or safetensors (media types: "
                           f"{', '.join(sorted({d.media_type for d in manifest.layers})) or 'none'})")
    if len(formats) == 1 and formats <= {mt.FORMAT_GGUF, mt.FORMAT_SAFETENSORS}:
        return str(next(iter(formats)))
    what = " and ".join(sorted(str(f) for f in formats))
    raise InvalidModel(f"{ref.short()} has {what} weights; llmctl reads models of GGUF or safetensors weights")


def _with_safetensors_headers(facts: ConfigFacts, weights: list[Path], store: Store, manifest: Manifest,
                              what: str) -> ConfigFacts:
    """A ModelPack config has no context length (and may lack the rest): read the weights' headers and the
    model's own config.json, from plain file layers or from inside tar layers (modctl's default), as `plan`
    finds it (`layer_files`)."""
    facts = replace(facts, format=mt.FORMAT_SAFETENSORS)
    if facts.architecture and facts.parameters and facts.quantization and facts.context_size:
        return facts
    from llmctl.artifact.gguf_meta import format_parameters
    from llmctl.artifact.safetensors_meta import read_safetensors, safetensors_facts

    try:
        infos = [read_safetensors(w) for w in weights] + _tarred_headers(store, manifest)
        hf_config = find_config_json(manifest, lambda d: store.open_blob(d.digest), what)
    except InvalidInput:  # InvalidModel too: `show` shows what the config has
        return facts
    found = safetensors_facts(infos, hf_config)
    return replace(
        facts,
        architecture=facts.architecture or found.architecture,
        parameters=facts.parameters or (format_parameters(found.parameter_count) if infos else None),
        quantization=facts.quantization or found.quantization,
        context_size=facts.context_size or found.context_size,
    )


def _tarred_headers(store: Store, manifest: Manifest) -> list[Any]:
    """The safetensors headers of weights kept inside tar layers (modctl's default `weight.v1.tar`): each
    layer's member is found from the tar headers and only its own header is read, never the tensors."""
    from llmctl.artifact.safetensors_meta import read_safetensors_at

    infos = []
    for d in manifest.layers:
        if d.media_type != mt.CNCF_WEIGHT_TAR:
            continue
        path = store.blob_path(d.digest)
        with store.open_blob(d.digest) as blob:
            member = tar_member(blob, lambda m: m.name.lower().endswith(".safetensors"), str(path))
            if member is None:
                continue
            blob.seek(member.offset_data)
            infos.append(read_safetensors_at(blob, member.size, path))
    return infos


def _with_gguf_header(facts: ConfigFacts, weights: list[Path]) -> ConfigFacts:
    """Fill what the config does not say from the GGUF header of the local blob (a cheap header walk)."""
    if facts.architecture and facts.parameters and facts.quantization and facts.context_size:
        return facts
    from llmctl.artifact.gguf_meta import format_parameters, read_gguf

    try:
        infos = [read_gguf(w) for w in weights]
    except InvalidModel:
        return facts  # `run` says what is wrong with the file; `show` shows what the config has
    first = infos[0]
    return replace(
        facts,
        architecture=facts.architecture or first.architecture,
        parameters=facts.parameters or format_parameters(sum(i.parameter_count for i in infos)),
        quantization=facts.quantization or first.quantization,
        context_size=facts.context_size or first.context_length,
    )


def _json_layer(store: Store, d: Descriptor, kind: type, ref: Reference) -> Any:
    try:
        value = json.loads(store.read_blob(d.digest))
    except ValueError as exc:
        raise IntegrityError(f"{ref.short()}: layer {d.digest} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise IntegrityError(f"{ref.short()}: layer {d.digest} is not a JSON {kind.__name__}")
    return value
