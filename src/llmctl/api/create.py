"""`create NAME -f Modelfile`: a Modelfile becomes a stored model.

Ollama's semantics for a FROM that names a stored model: its layers are reused (no weights copied);
TEMPLATE, SYSTEM and MESSAGEs given here replace the base's, PARAMETERs override the base's key by key,
ADAPTERs and LICENSEs are added (unless the base has the same one). Several FROM lines that are all GGUF files are the shards of one model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmctl.api.models import ensure_model, open_store, parse_name
from llmctl.artifact import build
from llmctl.artifact.build import ConfigFacts
from llmctl.artifact.ingest import check_gguf, commit_model, facts_for_shards, gguf_shards, ingest_file, ingest_text
from llmctl.artifact.model import Model, layer_role
from llmctl.errors import InvalidModelfile, LlmctlError, NotFound
from llmctl.modelfile import Modelfile, parse
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor
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
    new_bytes = reused = 0

    def err(message: str, cmd_name: str) -> InvalidModelfile:
        cmd = modelfile.command_for(cmd_name)
        return InvalidModelfile(message, path=modelfile.path, line=cmd.line if cmd else None)

    froms = modelfile.froms()
    file_froms = [f for f in froms if looks_like_path(f, base_dir)]
    with store.writing():
        layers: list[Descriptor] = []
        facts: ConfigFacts
        if file_froms:
            if len(file_froms) != len(froms):
                raise err("FROM a stored model cannot be combined with FROM files", "model")
            paths: list[Path] = []
            for arg in froms:
                try:
                    paths.extend(gguf_shards(resolve_path(arg, base_dir)))
                except LlmctlError as exc:
                    raise err(str(exc), "model") from None
            infos = []
            for p in paths:
                try:
                    infos.append(check_gguf(p))
                except LlmctlError as exc:
                    raise err(str(exc), "model") from None
            facts = facts_for_shards(infos)
            for p in paths:
                d = ingest_file(store, p, mt.GGUF, progress=progress)
                new_bytes += d.size
                layers.append(d)
        else:
            if len(froms) > 1:
                raise err("only one FROM may name a model", "model")
            try:
                base = ensure_model(settings, froms[0], progress)
            except LlmctlError as exc:
                raise err(f"FROM {froms[0]}: {exc}", "model") from None
            facts = base.facts
            layers = [d for d in base.manifest.layers if layer_role(d) not in REPLACED_ROLES]
            reused = sum(d.size for d in layers)
            inherited = _inherited(base)
        if file_froms:
            inherited = {}

        for arg in modelfile.adapters:
            path = resolve_path(arg, base_dir)
            try:
                check_gguf(path, expect="adapter")
            except LlmctlError as exc:
                raise err(f"ADAPTER {arg}: {exc}", "adapter") from None
            d = ingest_file(store, path, mt.GGUF_LORA, progress=progress)
            if _add_layer(layers, d):
                new_bytes += d.size
        for text in modelfile.licenses:
            _add_layer(layers, ingest_text(store, text, mt.LICENSE))

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
            layers.append(ingest_text(store, template, mt.TEMPLATE))
        if system is not None:
            layers.append(ingest_text(store, system, mt.SYSTEM))
        if parameters:
            layers.append(ingest_text(store, build.params_blob(parameters), mt.PARAMS))
        if messages:
            layers.append(ingest_text(store, build.messages_blob(messages), mt.MESSAGES))
        committed = commit_model(store, [ref], layers, facts)
    return Created(ref, committed.digest, reused, new_bytes)


def _add_layer(layers: list[Descriptor], d: Descriptor) -> bool:
    """Add an ADAPTER's or LICENSE's layer unless the model already has those bytes in that role (its base
    brought them): a Modelfile that names a stored model and repeats its license, as `show --modelfile`
    prints one for a safetensors model, re-creates that model instead of doubling its license."""
    role = layer_role(d)
    if any(layer_role(x) == role and x.digest == d.digest for x in layers):
        return False
    layers.append(d)
    return True


def _inherited(base: Model) -> dict:
    return {
        "template": base.template,
        "system": base.system,
        "parameters": base.parameters,
        "messages": [{"role": m.role, "content": m.content} for m in base.messages],
    }
