"""Files of the model folder inside an artifact's layers: config.json, and files in tar layers, read bounded.

A model's own config.json (the Hugging Face one: context length, layers, heads) is a plain file layer (DMR
v0.2, ModelPack `--raw`), or a member of a tar layer: DMR's config archive, its whole-folder tar, modctl's
default one-file tars. `plan` reads it to size a deployment, `show` to fill what the artifact's config does
not say; both find it here, reading at most MAX_CONFIG_JSON bytes of it and only the tar headers before it,
never the weights. Tars are read from a seekable file: a member's data is skipped, not read.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import PurePosixPath
from typing import IO, Any, Callable

from llmctl.errors import InvalidInput, InvalidModel
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest

MAX_CONFIG_JSON = 16 * 1024 * 1024
"""A config.json larger than this is not a model config (the largest published ones are tens of KB)."""

CONFIG_ARCHIVES = (mt.DMR_CONFIG_ARCHIVE, mt.DMR_DIR_TAR, mt.CNCF_WEIGHT_CONFIG_TAR)
"""Tars of model files: DMR's config archive (config.json, tokenizer and generation config), its whole-folder
tar, modctl's one-file-per-tar config layer."""
CONFIG_FILES = (mt.DMR_MODEL_FILE, mt.CNCF_WEIGHT_CONFIG)
"""Layers that are one file, named by their path annotation."""


def layer_path(desc: Descriptor) -> str:
    """The layer's path in the model folder, from its annotations ("" when it has none)."""
    return desc.annotations.get(mt.ANNOTATION_FILEPATH) or desc.annotations.get(mt.ANNOTATION_TITLE) or ""


def _depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


def load_config_json(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_CONFIG_JSON:
        raise InvalidInput(f"{what}: config.json is larger than {MAX_CONFIG_JSON // (1024 * 1024)} MiB")
    try:
        cfg = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what}: config.json is not JSON ({exc})") from None
    except RecursionError:  # a few hundred thousand nested brackets: within the size bound, past the parser's stack
        raise InvalidInput(f"{what}: config.json nests too deeply to be a model config") from None
    if not isinstance(cfg, dict):
        raise InvalidInput(f"{what}: config.json is not a JSON object")
    return cfg


def config_layers(manifest: Manifest) -> list[Descriptor]:
    """The layers that may hold config.json, most likely first: a file layer whose path is config.json (the
    top-level one before a sub-model's, `text_encoder/config.json`), then archives (an archive layer named
    config.json, as modctl's one-file tars are, before the others)."""
    files = [d for d in manifest.layers if d.media_type in CONFIG_FILES and PurePosixPath(layer_path(d)).name == "config.json"]
    archives = [d for d in manifest.layers if d.media_type in CONFIG_ARCHIVES]
    return (sorted(files, key=lambda d: _depth(layer_path(d)))
            + sorted(archives, key=lambda d: PurePosixPath(layer_path(d)).name != "config.json"))


def tar_member(blob: IO[bytes], wanted: Callable[[tarfile.TarInfo], bool], what: str) -> tarfile.TarInfo | None:
    """The shallowest regular file of the tar in `blob` that `wanted` accepts; `blob` stays open and positioned
    anywhere (seek to `member.offset_data` to read it). InvalidModel when `blob` is not a tar."""
    try:
        tar = tarfile.open(fileobj=blob, mode="r:")
        members = [m for m in tar.getmembers() if m.isfile() and wanted(m)]
    except tarfile.TarError as exc:
        raise InvalidModel(f"{what}: its config archive is not a tar file ({exc})") from None
    return min(members, key=lambda m: _depth(m.name), default=None)


def config_from_layer(desc: Descriptor, blob: bytes | IO[bytes], what: str) -> dict[str, Any] | None:
    """config.json from a file layer, or from an archive (None when the archive has none). `blob` is the layer's
    bytes or a seekable file of them; at most MAX_CONFIG_JSON bytes of config.json are read."""
    source = io.BytesIO(blob) if isinstance(blob, bytes) else blob
    if desc.media_type not in CONFIG_ARCHIVES:
        return load_config_json(source.read(MAX_CONFIG_JSON + 1), what)
    member = tar_member(source, lambda m: PurePosixPath(m.name).name == "config.json", what)
    if member is None:
        return None
    if member.size > MAX_CONFIG_JSON:
        raise InvalidInput(f"{what}: config.json is larger than {MAX_CONFIG_JSON // (1024 * 1024)} MiB")
    source.seek(member.offset_data)
    return load_config_json(source.read(member.size), what)


def find_config_json(manifest: Manifest, read: Callable[[Descriptor], bytes | IO[bytes]],
                     what: str) -> dict[str, Any] | None:
    """The model's config.json from the first layer of `config_layers` that holds one; None when none does.
    `read(desc)` gives the layer's bytes (a registry blob) or an open file of them (the store's), closed here."""
    for desc in config_layers(manifest):
        blob = read(desc)
        try:
            config = config_from_layer(desc, blob, what)
        finally:
            if not isinstance(blob, bytes):
                blob.close()
        if config is not None:
            return config
    return None


__all__ = ["CONFIG_ARCHIVES", "CONFIG_FILES", "MAX_CONFIG_JSON", "config_from_layer", "config_layers",
           "find_config_json", "layer_path", "load_config_json", "tar_member"]
