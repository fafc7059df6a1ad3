"""A Hugging Face model folder as Docker Model Runner packages it (`docker model package --safetensors-dir`).

Layout: one `application/vnd.docker.ai.safetensors` layer per weights file, in shard order; the config and
tokenizer files (`*.json` with `model.safetensors.index.json`, `*.txt`, `*.md`, `*.vocab`, `tokenizer.model`,
plus what transformers and vLLM also read: `*.jinja`, `*.tiktoken`, `*.model`, remote-code `*.py`) in one
`application/vnd.docker.ai.vllm.config.tar` layer; LICENSE files as license layers; config `format:
safetensors` with the facts from the headers and config.json. Like DMR, only the folder's top level counts
(subfolders are listed as skipped). With an index file, safetensors files the index does not name (Mistral's
`consolidated.safetensors` beside its shards) are skipped too: engines load what the index names.

The config archive is reproducible: sorted names, mode 0644, owner 0, mtime 0, so the same folder gives the
same digests on every machine and every run.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from llmctl.artifact.build import ConfigFacts, layer
from llmctl.artifact.safetensors_meta import read_config_json, read_safetensors, safetensors_facts
from llmctl.errors import InvalidInput, InvalidModel, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.blobs import BlobWriter
from llmctl.oci.descriptor import Descriptor
from llmctl.oci.layout import Store
from llmctl.progress import NullProgress, Progress

INDEX = "model.safetensors.index.json"
CONFIG = "config.json"
ARCHIVE_TITLE = "config.tar"
SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.safetensors$")
CONFIG_SUFFIXES = (".json", ".txt", ".md", ".vocab", ".jinja", ".tiktoken", ".model", ".py")
LICENSE_PREFIXES = ("license", "licence", "copying", "notice")


@dataclass(frozen=True)
class FolderPlan:
    """Names (relative to the folder) by what they become."""

    weights: tuple[str, ...]
    configs: tuple[str, ...]
    licenses: tuple[str, ...]
    skipped: tuple[str, ...]


def classify(name: str) -> str | None:
    """`weights`, `config`, `license` or None (not part of a safetensors model) for a top-level file name."""
    lower = name.lower()
    if name.startswith("."):
        return None
    if lower.endswith(".safetensors"):
        return "weights"
    if lower.startswith(LICENSE_PREFIXES):
        return "license"
    if lower.endswith(CONFIG_SUFFIXES):
        return "config"
    return None


def plan_folder(files: Iterable[str], folders: Iterable[str] = (), *, index: dict[str, Any] | None = None,
                where: str = "the folder") -> FolderPlan:
    """Choose the files of a safetensors model among a folder's top-level `files` (pure)."""
    by_kind: dict[str | None, list[str]] = {}
    for name in sorted(set(files)):
        by_kind.setdefault(classify(name), []).append(name)
    weights = by_kind.get("weights", [])
    hidden = [n for n in by_kind.get(None, []) if n.startswith(".")]  # .gitattributes, .cache/: not worth a word
    skipped = [n for n in by_kind.get(None, []) if n not in hidden] + [f"{d}/" for d in sorted(folders)
                                                                         if not d.startswith(".")]
    if not weights:
        hint = "only its top level is packaged, as Docker Model Runner does" if skipped else None
        raise NotFound(f"{where} has no .safetensors files", hint=hint)
    if index is not None:
        named = _index_files(index, where)
        missing = sorted(named - set(weights))
        if missing:
            raise NotFound(f"{where}: {INDEX} names {', '.join(missing[:3])}, which {'is' if len(missing) == 1 else 'are'}"
                           " not there")
        skipped += [w for w in weights if w not in named]
        weights = [w for w in weights if w in named]
    else:
        _check_shard_sets(weights, where)
    return FolderPlan(tuple(weights), tuple(by_kind.get("config", [])), tuple(by_kind.get("license", [])),
                      tuple(sorted(skipped)))


def _index_files(index: dict[str, Any], where: str) -> set[str]:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise InvalidModel(f"{where}: {INDEX} has no weight_map")
    names = {v for v in weight_map.values() if isinstance(v, str)}
    if len(names) != len(set(weight_map.values())) or any("/" in n or n.startswith(".") for n in names):
        raise InvalidModel(f"{where}: {INDEX} names files outside the folder")
    return names


def _check_shard_sets(weights: list[str], where: str) -> None:
    sets: dict[tuple[str, int], list[int]] = {}
    for name in weights:
        m = SHARD.match(name)
        if m:
            sets.setdefault((m["stem"], int(m["count"])), []).append(int(m["index"]))
    for (stem, count), have in sets.items():
        missing = sorted(set(range(1, count + 1)) - set(have))
        if missing:
            names = ", ".join(f"{stem}-{i:05d}-of-{count:05d}.safetensors" for i in missing[:3])
            raise NotFound(f"{where}: split model is missing {names}")


# -- facts (reads headers, never tensors) ----------------------------------------------------------
def facts_for_folder(weights: list[Path], config_json: Path | None) -> ConfigFacts:
    infos = [read_safetensors(p) for p in weights]
    config = read_config_json(config_json) if config_json is not None else None
    return ConfigFacts.from_safetensors(safetensors_facts(infos, config))


def read_index(path: Path | None) -> dict[str, Any] | None:
    return read_config_json(path) if path is not None else None


# -- the config archive ----------------------------------------------------------------------------
class _Sink:
    """The write end tarfile streams into: the store's blob writer (hashing as it goes)."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> int:
        self.writer.write(data)
        return len(data)


def ingest_config_archive(store: Store, files: list[tuple[str, Path]], progress: Progress | None = None) -> Descriptor:
    """Stream a reproducible tar of `files` (name in the archive, source path) into the store."""
    progress = progress or NullProgress()
    key = "config-archive"
    sizes = [(name, path, _size(path)) for name, path in sorted(files)]
    progress.start(key, f"archiving {len(sizes)} config files", sum(s for _, _, s in sizes))
    with store.writer() as writer:
        sink = _Sink(writer)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for name, path, size in sizes:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime, info.uid, info.gid = size, 0o644, 0, 0, 0
                with open(path, "rb") as source:
                    tar.addfile(info, _Exactly(source, size, path))
                progress.advance(key, size)
        written = writer.commit()
    progress.finish(key, "done")
    return layer(mt.DMR_CONFIG_ARCHIVE, written.digest, written.size, ARCHIVE_TITLE)


class _Exactly:
    """A file read for tarfile that must still have the size it had when listed."""

    def __init__(self, source: Any, size: int, path: Path) -> None:
        self.source, self.left, self.path = source, size, path

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        if not data and n != 0 and self.left > 0:
            raise InvalidInput(f"{self.path} shrank while it was being packaged")
        return data


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
