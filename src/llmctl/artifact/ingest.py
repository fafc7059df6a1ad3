"""Put local files into the store as layers, and commit a model (config + manifest + tags).

The only artifact module doing I/O. Files are streamed once: hashed while copied into the store, never
read whole into memory. A file whose digest the store already holds is still hashed (that is how we know)
but not kept twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from llmctl.artifact.build import ConfigFacts, build_config, build_manifest, layer
from llmctl.artifact.gguf_meta import GgufInfo, format_parameters, read_gguf
from llmctl.errors import InvalidModel, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.blobs import copy_into
from llmctl.oci.descriptor import Descriptor
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.progress import NullProgress, Progress

SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


def ingest_file(
    store: Store, path: Path, media_type: str, *, progress: Progress | None = None, title: str | None = None
) -> Descriptor:
    progress = progress or NullProgress()
    path = Path(path)
    try:
        size = path.stat().st_size
        source = open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidModel(f"{path}: is a directory, expected a file") from None
    key = f"ingest:{path}"
    progress.start(key, f"copying {path.name}", size)
    with source, store.writer() as writer:
        copy_into(writer, source, lambda n: progress.advance(key, n))
        written = writer.commit()
    progress.finish(key, "already in the store" if written.existed else "done")
    return layer(media_type, written.digest, written.size, title or path.name)


def ingest_text(store: Store, text: str | bytes, media_type: str) -> Descriptor:
    data = text.encode() if isinstance(text, str) else text
    written = store.put_bytes(data)
    return layer(media_type, written.digest, written.size)


def gguf_shards(path: Path) -> list[Path]:
    """A GGUF file, or every shard of a split model given any one shard, a folder or a glob, in order."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.gguf"))
        files = [f for f in files if "mmproj" not in f.name.lower()]
        if not files:
            raise NotFound(f"{path}: no .gguf files in this folder")
        return _complete_shards(files[0]) if SHARD.match(files[0].name) else _single(files, path)
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(p) for p in path.parent.glob(path.name))
        if not files:
            raise NotFound(f"{path}: no file matches")
        return files
    if not path.exists():
        raise NotFound(f"{path}: no such file")
    if SHARD.match(path.name):
        return _complete_shards(path)
    return [path]


def _single(files: list[Path], folder: Path) -> list[Path]:
    if len(files) > 1:
        names = ", ".join(f.name for f in files[:4])
        raise InvalidModel(f"{folder}: several unrelated .gguf files ({names}); name one")
    return files


def _complete_shards(any_shard: Path) -> list[Path]:
    m = SHARD.match(any_shard.name)
    assert m
    count = int(m["count"])
    shards = [any_shard.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [s.name for s in shards if not s.exists()]
    if missing:
        raise NotFound(f"{any_shard}: split model is missing {', '.join(missing[:3])}")
    return shards


def check_gguf(path: Path, *, expect: str = "model") -> GgufInfo:
    """Read a GGUF header and check it is the kind of file the caller wants (model or adapter)."""
    info = read_gguf(path)
    kind = str(info.kv.get("general.type", "model"))
    if expect == "adapter" and kind != "adapter":
        raise InvalidModel(f"{path}: not a LoRA adapter (general.type is {kind!r})")
    if expect == "model" and kind == "adapter":
        raise InvalidModel(f"{path}: is a LoRA adapter; use ADAPTER or --lora for it")
    return info


def facts_for_shards(infos: list[GgufInfo]) -> ConfigFacts:
    facts = ConfigFacts.from_gguf(infos[0])
    if len(infos) > 1:
        facts = replace(facts, parameters=format_parameters(sum(i.parameter_count for i in infos)))
    return facts


@dataclass(frozen=True)
class Committed:
    digest: str
    references: tuple[Reference, ...]


def commit_model(
    store: Store, refs: list[Reference], layers: list[Descriptor], facts: ConfigFacts, created: str | None = None
) -> Committed:
    """Write the config, then the manifest, then the tags: a reader never sees a half-made model."""
    config_bytes = build_config(facts, layers, created)
    written = store.put_bytes(config_bytes)
    config = Descriptor(mt.MODEL_CONFIG_V01, written.digest, written.size)
    manifest = build_manifest(config, layers)
    desc = store.put_manifest(manifest, refs)
    return Committed(desc.digest, tuple(refs))
