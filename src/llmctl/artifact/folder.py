"""Which file of a model folder each layer becomes: the plan `export` carries out (pure, no I/O).

The folder is what vLLM, SGLang and transformers load (`config.json`, tokenizer files and the weights side by
side) or, for a GGUF model, the .gguf with its projector, adapters, license and chat template. Paths come from
the layers' `org.cncf.model.filepath` / `org.opencontainers.image.title` annotations; a layer without one gets
Docker Model Runner's bundle name (`model.safetensors`, `model-00001-of-00002.safetensors`, `model.gguf`).
Archive layers (DMR's config archive, ModelPack tar layers) are unpacked; their member names pass the same
checks. Every path comes from a registry we do not trust: absolute paths, `..`, empty or odd components are
refused, never "cleaned" into something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from llmctl.artifact.layer_files import layer_path
from llmctl.artifact.model import layer_role
from llmctl.errors import InvalidModel
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest

MAX_PATH = 4096
MAX_COMPONENT = 255
# Modelfile parts that no engine reads from a folder (`show --modelfile` has them)
NOT_EXPORTED = (mt.ROLE_TEMPLATE, mt.ROLE_SYSTEM, mt.ROLE_PARAMS, mt.ROLE_MESSAGES)
# tar layers llmctl unpacks; compressed ModelPack variants (`.tar+gzip`, `.tar+zstd`) are refused by name
ARCHIVES = (mt.DMR_CONFIG_ARCHIVE, mt.DMR_DIR_TAR, mt.CNCF_WEIGHT_TAR, mt.CNCF_WEIGHT_CONFIG_TAR, mt.CNCF_DOC_TAR,
            mt.CNCF_CODE_TAR)


@dataclass(frozen=True)
class FolderEntry:
    """One layer's place in the folder: a file at `path`, or an archive unpacked into the folder's root."""

    layer: Descriptor
    path: str  # POSIX, relative; for an archive, only a name to report
    archive: bool = False


def safe_relpath(path: str, what: str) -> str:
    """`path` if it is a plain relative POSIX path inside the folder; InvalidModel otherwise."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise InvalidModel(f"{what}: unusable file path {path!r}")
    bad = "\x00" in path or "\\" in path or path.startswith("/") or any(ord(c) < 32 for c in path)
    parts = path.split("/")
    if bad or any(p in ("", ".", "..") or len(p) > MAX_COMPONENT for p in parts):
        raise InvalidModel(f"{what}: refusing file path {path!r} (it must stay inside the model folder)")
    return path


def folder_entries(manifest: Manifest, weight_format: str) -> list[FolderEntry]:
    """Every exported layer with its path, weights first; refuses unsafe or clashing paths."""
    weights = [d for d in manifest.layers if layer_role(d) == mt.ROLE_WEIGHTS]
    entries: list[FolderEntry] = []
    for i, d in enumerate(weights, start=1):
        default = _default_weight_name(weight_format, i, len(weights))
        entries.append(FolderEntry(d, _annotated(d) or default))
    counters: dict[str, int] = {}
    for d in manifest.layers:
        role = layer_role(d)
        if role == mt.ROLE_WEIGHTS or role in NOT_EXPORTED:
            continue
        if d.media_type in ARCHIVES:
            entries.append(FolderEntry(d, _annotated(d) or d.digest, archive=True))
            continue
        if d.media_type.startswith("application/vnd.cncf.model.") and "+" in d.media_type.rsplit(".", 1)[-1]:
            raise InvalidModel(f"layer {d.digest} is {d.media_type}: compressed ModelPack layers are not supported")
        path = _annotated(d)
        if path is None:
            base = _DEFAULT_NAMES.get(role or "")
            if base is None:
                continue  # a layer of a kind we do not know and that names no file: nothing to put anywhere
            n = counters[base] = counters.get(base, 0) + 1
            path = base if n == 1 else _numbered(base, n)
        entries.append(FolderEntry(d, path))
    _check_clashes(entries)
    return entries


_DEFAULT_NAMES = {
    mt.ROLE_PROJECTOR: "mmproj.gguf",
    mt.ROLE_ADAPTER: "adapter.gguf",
    mt.ROLE_LICENSE: "LICENSE",
    mt.ROLE_CHAT_TEMPLATE: "chat_template.jinja",
}


def _annotated(d: Descriptor) -> str | None:
    path = layer_path(d)
    return safe_relpath(path, f"layer {d.digest}") if path else None


def _default_weight_name(weight_format: str, index: int, count: int) -> str:
    suffix = "gguf" if weight_format == mt.FORMAT_GGUF else "safetensors"
    return f"model.{suffix}" if count == 1 else f"model-{index:05d}-of-{count:05d}.{suffix}"


def _numbered(name: str, n: int) -> str:
    p = PurePosixPath(name)
    return f"{p.stem}-{n}{p.suffix}"


def _check_clashes(entries: list[FolderEntry]) -> None:
    """Two layers for one path, or a path that is also another's folder, would silently lose a file."""
    files = [e.path for e in entries if not e.archive]
    seen: dict[str, str] = {}
    for path in files:
        key = path.casefold()  # a clash on case-insensitive file systems too
        if key in seen:
            raise InvalidModel(f"two layers of this model are both {path!r}")
        seen[key] = path
    folders = {str(p).casefold() for path in files for p in PurePosixPath(path).parents if str(p) != "."}
    for path in files:
        if path.casefold() in folders:
            raise InvalidModel(f"{path!r} is both a file and a folder of this model")
