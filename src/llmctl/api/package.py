"""`package`: GGUF weights plus license, chat template, LoRA and projector files become a model.

Docker Model Runner's `docker model package` flags. A sharded GGUF (`name-00001-of-00003.gguf`) given by
any one shard brings all of its shards, in order, as Docker Model Runner does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from llmctl.api.models import open_store, parse_name
from llmctl.artifact.ingest import check_gguf, commit_model, facts_for_shards, gguf_shards, ingest_file
from llmctl.errors import InvalidInput, InvalidModel
from llmctl.oci import mediatypes as mt
from llmctl.oci.reference import Reference
from llmctl.progress import Progress
from llmctl.settings import Settings


@dataclass(frozen=True)
class PackageSpec:
    gguf: Path
    licenses: tuple[Path, ...] = ()
    chat_template: Path | None = None
    lora: tuple[Path, ...] = ()
    mmproj: Path | None = None
    context_size: int | None = None


@dataclass(frozen=True)
class Packaged:
    reference: Reference
    digest: str
    size: int


def package(settings: Settings, name: str, spec: PackageSpec, progress: Progress | None = None) -> Packaged:
    ref = parse_name(settings, name)
    shards = gguf_shards(spec.gguf)
    infos = [check_gguf(p) for p in shards]
    facts = facts_for_shards(infos)
    if spec.context_size is not None:
        if spec.context_size <= 0:
            raise InvalidInput(f"--context-size must be positive, got {spec.context_size}")
        facts = replace(facts, context_size=spec.context_size)
    for lora in spec.lora:
        check_gguf(lora, expect="adapter")
    if spec.mmproj is not None:
        info = check_gguf(spec.mmproj, expect="any")
        if info.kv.get("general.type") not in (None, "mmproj", "clip") and "clip.has_vision_encoder" not in info.kv:
            raise InvalidModel(f"{spec.mmproj}: not a multimodal projector (general.type {info.kv.get('general.type')!r})")
    if spec.chat_template is not None:
        try:
            spec.chat_template.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"{spec.chat_template}: no such chat template file") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{spec.chat_template}: chat template is not UTF-8 text") from None

    store = open_store(settings)
    with store.writing():
        layers = [ingest_file(store, p, mt.GGUF, progress=progress) for p in shards]
        layers += [ingest_file(store, p, mt.LICENSE, progress=progress) for p in spec.licenses]
        if spec.chat_template is not None:
            layers.append(ingest_file(store, spec.chat_template, mt.CHAT_TEMPLATE, progress=progress))
        layers += [ingest_file(store, p, mt.GGUF_LORA, progress=progress) for p in spec.lora]
        if spec.mmproj is not None:
            layers.append(ingest_file(store, spec.mmproj, mt.GGUF_MMPROJ, progress=progress))
        committed = commit_model(store, [ref], layers, facts)
    return Packaged(ref, committed.digest, sum(d.size for d in layers))
