"""`package`: GGUF weights, or a safetensors model folder, plus license and chat template become a model.

Docker Model Runner's `docker model package` flags. A sharded GGUF (`name-00001-of-00003.gguf`) given by
any one shard brings all of its shards, in order, as Docker Model Runner does. `--safetensors-dir` packages a
Hugging Face folder the way DMR does (`artifact/safetensors_pack.py`): the weights as safetensors layers, the
config and tokenizer files as one config archive layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from llmctl.api.models import open_store, parse_name
from llmctl.artifact.build import ConfigFacts, rfc3339
from llmctl.artifact.ingest import check_gguf, commit_model, facts_for_shards, gguf_shards, ingest_file
from llmctl.errors import InvalidInput, InvalidModel, NotFound, UsageError
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.progress import Progress
from llmctl.settings import Settings


@dataclass(frozen=True)
class PackageSpec:
    gguf: Path | None = None
    licenses: tuple[Path, ...] = ()
    chat_template: Path | None = None
    lora: tuple[Path, ...] = ()
    mmproj: Path | None = None
    context_size: int | None = None
    safetensors_dir: Path | None = None


@dataclass(frozen=True)
class Packaged:
    reference: Reference
    digest: str
    size: int
    skipped: tuple[str, ...] = ()  # files of a --safetensors-dir that are not part of the model


def package(settings: Settings, name: str, spec: PackageSpec, progress: Progress | None = None) -> Packaged:
    ref = parse_name(settings, name)
    _check_spec(spec)
    if spec.safetensors_dir is not None:
        return _package_safetensors(settings, ref, spec, progress)
    assert spec.gguf is not None
    shards = gguf_shards(spec.gguf)
    infos = [check_gguf(p) for p in shards]
    facts = _with_context(facts_for_shards(infos), spec)
    for lora in spec.lora:
        check_gguf(lora, expect="adapter")
    if spec.mmproj is not None:
        info = check_gguf(spec.mmproj, expect="any")
        if info.kv.get("general.type") not in (None, "mmproj", "clip") and "clip.has_vision_encoder" not in info.kv:
            raise InvalidModel(f"{spec.mmproj}: not a multimodal projector (general.type {info.kv.get('general.type')!r})")
    store = open_store(settings)
    with store.writing():
        layers = [ingest_file(store, p, mt.GGUF, progress=progress) for p in shards]
        layers += _companions(store, spec, progress)
        layers += [ingest_file(store, p, mt.GGUF_LORA, progress=progress) for p in spec.lora]
        if spec.mmproj is not None:
            layers.append(ingest_file(store, spec.mmproj, mt.GGUF_MMPROJ, progress=progress))
        committed = commit_model(store, [ref], layers, facts, created=rfc3339(settings.source_date_epoch))
    return Packaged(ref, committed.digest, sum(d.size for d in layers))


def _check_spec(spec: PackageSpec) -> None:
    if (spec.gguf is None) == (spec.safetensors_dir is None):
        raise UsageError("pass either --gguf or --safetensors-dir")
    if spec.safetensors_dir is not None and (spec.lora or spec.mmproj):
        raise UsageError("--lora and --mmproj are GGUF files; they do not go with --safetensors-dir")
    if spec.context_size is not None and spec.context_size <= 0:
        raise InvalidInput(f"--context-size must be positive, got {spec.context_size}")
    if spec.chat_template is not None:
        try:
            spec.chat_template.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"{spec.chat_template}: no such chat template file") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{spec.chat_template}: chat template is not UTF-8 text") from None


def _with_context(facts: ConfigFacts, spec: PackageSpec) -> ConfigFacts:
    return replace(facts, context_size=spec.context_size) if spec.context_size is not None else facts


def _companions(store: Store, spec: PackageSpec, progress: Progress | None) -> list[Descriptor]:
    """--license and --chat-template layers, for either format."""
    layers = [ingest_file(store, p, mt.LICENSE, progress=progress) for p in spec.licenses]
    if spec.chat_template is not None:
        layers.append(ingest_file(store, spec.chat_template, mt.CHAT_TEMPLATE, progress=progress))
    return layers


def _package_safetensors(settings: Settings, ref: Reference, spec: PackageSpec, progress: Progress | None) -> Packaged:
    from llmctl.artifact import safetensors_pack as sp

    folder = Path(spec.safetensors_dir or ".").expanduser()
    if not folder.exists():
        raise NotFound(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InvalidInput(f"{folder}: --safetensors-dir needs a folder (config.json and *.safetensors files)")
    files, folders = [], []
    for entry in sorted(folder.iterdir()):
        (folders if entry.is_dir() else files).append(entry.name)  # symlinks followed: HF cache snapshots are links
    index = sp.read_index(folder / sp.INDEX if sp.INDEX in files else None)
    plan = sp.plan_folder(files, folders, index=index, where=str(folder))
    config = folder / sp.CONFIG if sp.CONFIG in plan.configs else None
    facts = _with_context(sp.facts_for_folder([folder / w for w in plan.weights], config), spec)
    store = open_store(settings)
    with store.writing():
        layers = [ingest_file(store, folder / w, mt.DMR_SAFETENSORS, progress=progress) for w in plan.weights]
        if plan.configs:
            layers.append(sp.ingest_config_archive(store, [(c, folder / c) for c in plan.configs], progress))
        layers += [ingest_file(store, folder / lic, mt.LICENSE, progress=progress) for lic in plan.licenses]
        layers += _companions(store, spec, progress)
        committed = commit_model(store, [ref], layers, facts, created=rfc3339(settings.source_date_epoch))
    return Packaged(ref, committed.digest, sum(d.size for d in layers), plan.skipped)
