"""A stored model resolved into what the runtime and `show` need: files on disk plus Modelfile parts.

Reads every artifact variant we accept: ours, Docker Model Runner's v0.1/v0.2 configs, Ollama's
`application/vnd.ollama.image.*` layers and CNCF ModelPack manifests. Layer meaning comes from
`mediatypes.LAYER_ROLES`, with the file path annotation deciding for generic file layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.artifact.build import ConfigFacts, facts_from_config
from llmctl.errors import IntegrityError, InvalidModel
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


def layer_role(desc: Descriptor) -> str | None:
    role = mt.LAYER_ROLES.get(desc.media_type)
    if role:
        return role
    path = desc.annotations.get(mt.ANNOTATION_FILEPATH) or desc.annotations.get(mt.ANNOTATION_TITLE) or ""
    if desc.media_type in (mt.DMR_MODEL_FILE, mt.CNCF_WEIGHT_RAW) and path.endswith(".gguf"):
        return mt.ROLE_WEIGHTS
    if desc.media_type in (mt.DMR_MODEL_FILE, mt.CNCF_DOC) and Path(path).name.upper().startswith("LICENSE"):
        return mt.ROLE_LICENSE
    return None


def load(store: Store, ref: Reference) -> Model:
    """Resolve `ref` in the store into a Model. Raises NotFound, or IntegrityError for missing blobs."""
    desc = store.resolve(ref)
    manifest = store.manifest(desc)
    try:
        config = json.loads(store.read_blob(manifest.config.digest)) if manifest.config.size else {}
    except ValueError as exc:
        raise IntegrityError(f"{ref.short()}: config blob is not JSON: {exc}") from None
    if not isinstance(config, dict):
        config = {}

    def text(d: Descriptor) -> str:
        return store.read_blob(d.digest).decode("utf-8", errors="replace")

    def path(d: Descriptor) -> Path:
        p = store.blob_path(d.digest)
        if not p.exists():
            raise IntegrityError(f"{ref.short()}: blob {d.digest} is missing (run `llmctl verify`)")
        return p

    weights, adapters, licenses = [], [], []
    projector = chat_template = template = system = None
    parameters: dict[str, Any] = {}
    messages: list[Message] = []
    for d in manifest.layers:
        role = layer_role(d)
        if role == mt.ROLE_WEIGHTS:
            weights.append(path(d))
        elif role == mt.ROLE_ADAPTER:
            adapters.append(path(d))
        elif role == mt.ROLE_PROJECTOR:
            projector = path(d)
        elif role == mt.ROLE_LICENSE:
            licenses.append(text(d))
        elif role == mt.ROLE_CHAT_TEMPLATE:
            chat_template = text(d)
        elif role == mt.ROLE_TEMPLATE:
            template = text(d)
        elif role == mt.ROLE_SYSTEM:
            system = text(d)
        elif role == mt.ROLE_PARAMS:
            parameters = _json_layer(store, d, dict, ref)
        elif role == mt.ROLE_MESSAGES:
            raw = _json_layer(store, d, list, ref)
            messages = [Message(str(m.get("role", "")), str(m.get("content", ""))) for m in raw if isinstance(m, dict)]
    if not weights:
        raise InvalidModel(f"{ref.short()} has no GGUF weights layer (media types: "
                           f"{', '.join(sorted({d.media_type for d in manifest.layers})) or 'none'})")
    descriptor = config.get("descriptor") if isinstance(config.get("descriptor"), dict) else {}
    created = descriptor.get("createdAt") or descriptor.get("created") or config.get("created")
    return Model(
        reference=ref if not ref.digest else ref,
        digest=desc.digest,
        manifest=manifest,
        config=config,
        facts=facts_from_config(config),
        weights=tuple(weights),
        adapters=tuple(adapters),
        projector=projector,
        chat_template=chat_template,
        template=template,
        system=system,
        parameters=parameters,
        messages=tuple(messages),
        licenses=tuple(licenses),
        created=created,
    )


def _json_layer(store: Store, d: Descriptor, kind: type, ref: Reference) -> Any:
    try:
        value = json.loads(store.read_blob(d.digest))
    except ValueError as exc:
        raise IntegrityError(f"{ref.short()}: layer {d.digest} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise IntegrityError(f"{ref.short()}: layer {d.digest} is not a JSON {kind.__name__}")
    return value
