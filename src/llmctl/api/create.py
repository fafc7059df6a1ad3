"""`create NAME -f Modelfile`: a Modelfile becomes a stored model.

Ollama's semantics for a FROM that names a stored model: its layers are reused (no weights copied);
TEMPLATE, SYSTEM and MESSAGEs given here replace the base's, PARAMETERs override the base's key by key,
ADAPTERs and LICENSEs are added (unless the base has the same one). Several FROM lines that are all GGUF files are the shards of one model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.api.models import ensure_model, open_store, parse_name
from llmctl.artifact import build
from llmctl.artifact.build import ConfigFacts, rfc3339
from llmctl.artifact.ingest import check_gguf, commit_model, facts_for_shards, gguf_shards, ingest_file, ingest_text
from llmctl.artifact.model import Model, layer_role
from llmctl.errors import InvalidModelfile, LlmctlError, NotFound
from llmctl.modelfile import Modelfile, parse
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.progress import NullProgress, Progress
from llmctl.settings import Settings

# Base layers whose role the Modelfile can replace, and the role -> media type we write for new ones.
REPLACED_ROLES = {mt.ROLE_TEMPLATE, mt.ROLE_SYSTEM, mt.ROLE_PARAMS, mt.ROLE_MESSAGES}


@dataclass(frozen=True)
class Created:
    reference: Reference
    digest: str
    reused_bytes: int
    new_bytes: int


def read_modelfile(path: Path) -> Modelfile:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such Modelfile") from None
    except IsADirectoryError:
        raise NotFound(f"{path}: is a directory, expected a Modelfile") from None
    return parse(data, str(path))


def looks_like_path(arg: str, base_dir: Path) -> bool:
    """Ollama's rule, made explicit: a FROM is a file when it exists, or is written as a path."""
    if arg.startswith(("/", "./", "../", "~")) or arg.endswith(".gguf") or any(c in arg for c in "*?["):
        return True
    return (base_dir / arg).exists()


def resolve_path(arg: str, base_dir: Path) -> Path:
    p = Path(os.path.expanduser(arg))
    return p if p.is_absolute() else base_dir / p


def create(
    settings: Settings,
    name: str,
    modelfile: Modelfile,
    *,
    base_dir: Path | None = None,
    progress: Progress | None = None,
) -> Created:
    progress = progress or NullProgress()
    ref = parse_name(settings, name)
    base_dir = base_dir or (Path(modelfile.path).parent if modelfile.path else Path.cwd())
    store = open_store(settings)
    with store.writing():
        if any(looks_like_path(f, base_dir) for f in modelfile.froms()):
            draft = _from_files(store, modelfile, base_dir, progress, name)
        else:
            draft = _from_model(settings, modelfile, progress)
        _add_adapters_and_licenses(store, draft, modelfile, base_dir, progress)
        _add_modelfile_parts(store, draft, modelfile)
        committed = commit_model(store, [ref], draft.layers, draft.facts, created=rfc3339(settings.source_date_epoch))
    return Created(ref, committed.digest, draft.reused, draft.new_bytes)


@dataclass
class _Draft:
    """The model being created: its layers so far, its facts, what it inherits from a base, and the bytes
    it copied into the store (`new_bytes`) or took from the base (`reused`)."""

    layers: list[Descriptor]
    facts: ConfigFacts
    inherited: dict[str, Any] = field(default_factory=dict)
    new_bytes: int = 0
    reused: int = 0

    def add(self, d: Descriptor) -> bool:
        """Add an ADAPTER's or LICENSE's layer unless the model already has those bytes in that role (its base
        brought them): a Modelfile that names a stored model and repeats its license, as `show --modelfile`
        prints one for a safetensors model, re-creates that model instead of doubling its license."""
        role = layer_role(d)
        if any(layer_role(x) == role and x.digest == d.digest for x in self.layers):
            return False
        self.layers.append(d)
        return True


def _error(modelfile: Modelfile, message: str, cmd_name: str) -> InvalidModelfile:
    """An error at the line of the first `cmd_name` command."""
    cmd = modelfile.command_for(cmd_name)
    return InvalidModelfile(message, path=modelfile.path, line=cmd.line if cmd else None)


def _from_files(store: Store, modelfile: Modelfile, base_dir: Path, progress: Progress, name: str) -> _Draft:
    """FROM files: the GGUF shards they name, checked, then copied into the store."""
    froms = modelfile.froms()
    if not all(looks_like_path(f, base_dir) for f in froms):
        raise _error(modelfile, "FROM a stored model cannot be combined with FROM files", "model")
    paths: list[Path] = []
    for arg in froms:
        folder = resolve_path(arg, base_dir)
        try:
            paths.extend(gguf_shards(folder))
        except LlmctlError as exc:
            raise _error(modelfile, str(exc) + _safetensors_hint(folder, name), "model") from None
    infos = []
    for p in paths:
        try:
            infos.append(check_gguf(p))
        except LlmctlError as exc:
            raise _error(modelfile, str(exc), "model") from None
    draft = _Draft([], facts_for_shards(infos))
    for p in paths:
        d = ingest_file(store, p, mt.GGUF, progress=progress)
        draft.new_bytes += d.size
        draft.layers.append(d)
    return draft


def _safetensors_hint(folder: Path, name: str) -> str:
    """Where a FROM folder holds safetensors weights rather than GGUF, the command that stores them: Ollama
    converts such a folder, llmctl packages it as Docker Model Runner does (and plans or exports it)."""
    if not folder.is_dir() or not any(folder.glob("*.safetensors")):
        return ""
    import shlex

    return (f"; it holds safetensors weights: store them with "
            f"`llmctl package --safetensors-dir {shlex.quote(str(folder))} {shlex.quote(name)}`")


def _from_model(settings: Settings, modelfile: Modelfile, progress: Progress) -> _Draft:
    """FROM a stored model (pulled first if needed): its layers, less the parts a Modelfile replaces."""
    froms = modelfile.froms()
    if len(froms) > 1:
        raise _error(modelfile, "only one FROM may name a model", "model")
    try:
        base = ensure_model(settings, froms[0], progress)
    except LlmctlError as exc:
        raise _error(modelfile, f"FROM {froms[0]}: {exc}", "model") from None
    layers = [d for d in base.manifest.layers if layer_role(d) not in REPLACED_ROLES]
    return _Draft(layers, base.facts, _inherited(base), reused=sum(d.size for d in layers))


def _add_adapters_and_licenses(store: Store, draft: _Draft, modelfile: Modelfile, base_dir: Path,
                               progress: Progress) -> None:
    for arg in modelfile.adapters:
        path = resolve_path(arg, base_dir)
        try:
            check_gguf(path, expect="adapter")
        except LlmctlError as exc:
            raise _error(modelfile, f"ADAPTER {arg}: {exc}", "adapter") from None
        d = ingest_file(store, path, mt.GGUF_LORA, progress=progress)
        if draft.add(d):
            draft.new_bytes += d.size
    for text in modelfile.licenses:
        draft.add(ingest_text(store, text, mt.LICENSE))


def _add_modelfile_parts(store: Store, draft: _Draft, modelfile: Modelfile) -> None:
    """TEMPLATE, SYSTEM and MESSAGEs replace the base's; PARAMETERs override the base's one by one."""
    inherited = draft.inherited
    template = modelfile.template if modelfile.template is not None else inherited.get("template")
    system = modelfile.system if modelfile.system is not None else inherited.get("system")
    parameters = dict(inherited.get("parameters") or {})
    parameters.update(modelfile.parameters)
    messages = (
        [{"role": m.role, "content": m.content} for m in modelfile.messages]
        if modelfile.messages
        else inherited.get("messages") or []
    )
    if template is not None:
        draft.layers.append(ingest_text(store, template, mt.TEMPLATE))
    if system is not None:
        draft.layers.append(ingest_text(store, system, mt.SYSTEM))
    if parameters:
        draft.layers.append(ingest_text(store, build.params_blob(parameters), mt.PARAMS))
    if messages:
        draft.layers.append(ingest_text(store, build.messages_blob(messages), mt.MESSAGES))


def _inherited(base: Model) -> dict:
    return {
        "template": base.template,
        "system": base.system,
        "parameters": base.parameters,
        "messages": [{"role": m.role, "content": m.content} for m in base.messages],
    }
