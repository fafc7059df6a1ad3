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
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from llmctl.errors import IntegrityError, InvalidInput, InvalidModel, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.reference import Reference
from llmctl.plan.weights import Weights
from llmctl.settings import Settings

MAX_CONFIG_JSON = 16 * 1024 * 1024
"""A config.json larger than this is not a model config (the largest published ones are tens of KB)."""

SAFETENSORS_LAYERS = (mt.DMR_SAFETENSORS, mt.CNCF_WEIGHT_SAFETENSORS)
GGUF_LAYERS = (mt.GGUF, mt.OLLAMA_MODEL, mt.CNCF_WEIGHT_GGUF)
CONFIG_ARCHIVES = (mt.DMR_CONFIG_ARCHIVE, mt.DMR_DIR_TAR, mt.CNCF_WEIGHT_CONFIG_TAR)
"""Tars of model files: DMR's config archive (config.json, tokenizer and generation config), its whole-folder
tar, modctl's one-file-per-tar config layer."""
CONFIG_FILES = (mt.DMR_MODEL_FILE, mt.CNCF_WEIGHT_CONFIG)
"""Layers that are one file, named by their path annotation."""
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


def load_config_json(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_CONFIG_JSON:
        raise InvalidInput(f"{what}: config.json is larger than {MAX_CONFIG_JSON // (1024 * 1024)} MiB")
    try:
        cfg = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what}: config.json is not JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise InvalidInput(f"{what}: config.json is not a JSON object")
    return cfg


def _path(desc: Descriptor) -> str:
    return desc.annotations.get(mt.ANNOTATION_FILEPATH) or desc.annotations.get(mt.ANNOTATION_TITLE) or ""


def weight_format(manifest: Manifest) -> str | None:
    """safetensors, gguf, or None when the artifact has no weights llmctl knows."""
    for d in manifest.layers:
        if d.media_type in SAFETENSORS_LAYERS or (d.media_type in PATH_TYPED_LAYERS and _path(d).endswith(".safetensors")):
            return "safetensors"
    if any(d.media_type in GGUF_LAYERS or _path(d).endswith(".gguf") for d in manifest.layers):
        return "gguf"
    return None


def config_layers(manifest: Manifest) -> list[Descriptor]:
    """The layers that may hold config.json, most likely first: a file layer whose path is config.json, then
    archives (an archive layer named config.json, as modctl's one-file tars are, before the others)."""
    files = [d for d in manifest.layers if d.media_type in CONFIG_FILES and PurePosixPath(_path(d)).name == "config.json"]
    archives = [d for d in manifest.layers if d.media_type in CONFIG_ARCHIVES]
    return files + sorted(archives, key=lambda d: PurePosixPath(_path(d)).name != "config.json")


def config_from_layer(desc: Descriptor, data: bytes, what: str) -> dict[str, Any] | None:
    """config.json from a file layer, or from an archive (None when the archive has none)."""
    if desc.media_type not in CONFIG_ARCHIVES:
        return load_config_json(data, what)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and PurePosixPath(m.name).name == "config.json"]
            member = min(members, key=lambda m: len(PurePosixPath(m.name).parts), default=None)
            if member is None:
                return None
            if member.size > MAX_CONFIG_JSON:
                raise InvalidInput(f"{what}: config.json is larger than {MAX_CONFIG_JSON // (1024 * 1024)} MiB")
            handle = tar.extractfile(member)
            assert handle is not None
            return load_config_json(handle.read(), what)
    except tarfile.TarError as exc:
        raise InvalidModel(f"{what}: its config archive is not a tar file ({exc})") from None


def weights_bytes(manifest: Manifest) -> int:
    """Bytes a pod stores: every layer but the licence and Modelfile parts."""
    skip = {mt.LICENSE, mt.SYSTEM, mt.TEMPLATE, mt.PARAMS, mt.MESSAGES}
    return sum(d.size for d in manifest.layers if d.media_type not in skip)


def folder_name(ref: Reference) -> str:
    return f"{ref.repository.rsplit('/', 1)[-1]}-{ref.tag}" if ref.tag else ref.repository.rsplit("/", 1)[-1]


def _oci_weights(ref: Reference, digest: str, manifest: Manifest) -> Weights:
    """Pinned by digest alone: a reference with both tag and digest is refused by some tools (skopeo)."""
    pinned = Reference(ref.registry, ref.repository, None, digest)
    return Weights("oci", str(pinned), size_bytes=weights_bytes(manifest), name=folder_name(ref))


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
    config = None
    for desc in config_layers(manifest):
        config = config_from_layer(desc, read(desc), what)
        if config is not None:
            break
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
                          lambda d: store.read_blob(d.digest), what, local=True)


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
