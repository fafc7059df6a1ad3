"""A stored or registry model for `llmctl plan`: its config.json and size, without its weights.

A safetensors artifact (Docker Model Runner's layout: `application/vnd.docker.ai.safetensors` layers and the
`application/vnd.docker.ai.vllm.config.tar` config archive; ModelPack's safetensors layers and config files
too) is sized from the config.json inside it, and its pods get the weights from the registry by digest. For
a model only in a registry, only the manifest and the config archive are fetched (LLMCTL_PLAN_CONFIG_MAX_BYTES
bounds it), never the weights. A GGUF model is sized from its GGUF header (vLLM/SGLang plans of it need
`--model-source`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from llmctl.artifact.layer_files import CONFIG_FILES, find_config_json
from llmctl.artifact.layer_files import layer_path as _path
from llmctl.errors import IntegrityError, InvalidInput, InvalidModel, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.reference import Reference
from llmctl.plan.weights import Weights
from llmctl.settings import Settings

SAFETENSORS_LAYERS = (mt.DMR_SAFETENSORS, mt.CNCF_WEIGHT_SAFETENSORS)
GGUF_LAYERS = (mt.GGUF, mt.OLLAMA_MODEL, mt.CNCF_WEIGHT_GGUF)
PATH_TYPED_LAYERS = (*CONFIG_FILES, mt.CNCF_WEIGHT_RAW, mt.CNCF_WEIGHT_TAR)
"""Layers whose path annotation says what weights they hold: generic file layers, and modctl's default
one-file tar layers (`model-00001-of-00002.safetensors` inside a `weight.v1.tar`)."""


@dataclass(frozen=True)
class ArtifactModel:
    """What `plan` needs of an artifact: config.json (safetensors) or GGUF key/values, and the pods' source."""

    name: str  # the short name, served to clients
    config: dict[str, Any] | None
    gguf: tuple[dict[str, Any], int] | None
    weights: Weights | None
    notes: tuple[str, ...] = ()


def weight_format(manifest: Manifest) -> str | None:
    """safetensors, gguf, or None when the artifact has no weights llmctl knows."""
    for d in manifest.layers:
        if d.media_type in SAFETENSORS_LAYERS or (d.media_type in PATH_TYPED_LAYERS and _path(d).endswith(".safetensors")):
            return "safetensors"
    if any(d.media_type in GGUF_LAYERS or _path(d).endswith(".gguf") for d in manifest.layers):
        return "gguf"
    return None


def weights_bytes(manifest: Manifest) -> int:
    """Bytes a pod stores: every layer but the licence and Modelfile parts."""
    skip = {mt.LICENSE, mt.SYSTEM, mt.TEMPLATE, mt.PARAMS, mt.MESSAGES}
    return sum(d.size for d in manifest.layers if d.media_type not in skip)


def folder_name(ref: Reference) -> str:
    return f"{ref.repository.rsplit('/', 1)[-1]}-{ref.tag}" if ref.tag else ref.repository.rsplit("/", 1)[-1]


def _oci_weights(ref: Reference, digest: str, manifest: Manifest) -> Weights:
    """Pinned by digest alone: a reference with both tag and digest is refused by some tools (skopeo)."""
    pinned = Reference(ref.registry, ref.repository, None, digest)
    tars = sum(d.size for d in manifest.layers if mt.LAYER_ROLES.get(d.media_type) == mt.ROLE_ARCHIVE)
    return Weights("oci", str(pinned), size_bytes=weights_bytes(manifest), name=folder_name(ref), unpacked_bytes=tars)


def _fetch_blob(client: Any, repository: str, desc: Descriptor, limit: int, what: str) -> bytes:
    """One small blob into memory, verified by digest (the config archive; never the weights)."""
    from llmctl.oci.registry.auth import repo_scope

    if desc.size > limit:
        raise InvalidModel(f"{what}: its config archive is {desc.size:,} bytes, over LLMCTL_PLAN_CONFIG_MAX_BYTES "
                           f"({limit:,})", hint="raise LLMCTL_PLAN_CONFIG_MAX_BYTES, or pull the model first")
    resp = client.request("GET", f"/v2/{repository}/blobs/{desc.digest}", scopes=(repo_scope(repository, "pull"),),
                          stream=True, follow_redirects=True)
    try:
        if resp.status_code != 200:
            raise client.error(resp, f"the config archive of {what}")
        data = resp.read(limit + 1)
    finally:
        resp.close()
    if "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
        raise IntegrityError(f"the config archive of {what} does not hash to {desc.digest}")
    return data


def _from_manifest(settings: Settings, ref: Reference, digest: str, manifest: Manifest, read: Any,
                   what: str, *, local: bool) -> ArtifactModel | None:
    fmt = weight_format(manifest)
    if fmt == "gguf":
        from llmctl.api.models import stored_gguf_metadata

        kv, count = stored_gguf_metadata(settings, str(ref), pull=not local)
        return ArtifactModel(what, None, (kv, count), None,
                             (f"{what} is a GGUF model (llama.cpp); vLLM/SGLang plans need --model-source",))
    if fmt != "safetensors":
        return None
    config = find_config_json(manifest, read, what)
    if config is None:
        raise InvalidModel(f"{what}: a safetensors model without config.json (no config file or archive has one)",
                           hint="package it with `llmctl package --safetensors-dir DIR`")
    notes = (f"pods pull {ref.name}@{digest[:19]}: it must be in that registry (`llmctl push {what}`)",) if local else ()
    return ArtifactModel(what, config, None, _oci_weights(ref, digest, manifest), notes)


def from_store_or_registry(settings: Settings, spec: str, *, pull: bool) -> ArtifactModel | None:
    """The model named `spec` in the store, else (when `pull`) in its registry; None when it is in neither
    or is not a model artifact llmctl plans."""
    from llmctl.api.models import get_model, open_store, parse_name, short

    try:
        ref = parse_name(settings, spec)
    except InvalidInput:  # not a valid store name at all
        return None
    what = short(settings, ref)
    store = open_store(settings)
    try:
        desc = store.resolve(ref)
    except NotFound:
        try:
            get_model(settings, ref)  # the bundled default installs on first use; anything else stays NotFound
            desc = store.resolve(ref)
        except NotFound:
            return _from_registry(settings, ref, what) if pull else None
    return _from_manifest(settings, ref, desc.digest, store.manifest(desc),
                          lambda d: store.open_blob(d.digest), what, local=True)


def _from_registry(settings: Settings, ref: Reference, what: str) -> ArtifactModel | None:
    from llmctl.api.pull import check_online
    from llmctl.oci.registry import connect
    from llmctl.oci.registry.pull import fetch_manifest

    check_online(settings, ref.registry)
    with connect(settings, ref.registry) as client:
        pulled = fetch_manifest(client, ref, what=what)
        try:
            manifest = Manifest.from_bytes(pulled.raw)
        except InvalidModel as exc:
            raise InvalidModel(f"{what}: {exc}") from None
        return _from_manifest(
            settings, ref, pulled.digest, manifest,
            lambda desc: _fetch_blob(client, ref.repository, desc, settings.plan_config_max_bytes, what),
            what, local=False)
