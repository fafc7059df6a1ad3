"""MODEL → ModelProfile. Order: a local folder with config.json; the built-in catalog (name, Hugging Face
id or alias); a Hugging Face id already in the local hub cache; a stored llmctl GGUF model (through a
lookup the caller passes). Never downloads: a missing config.json is an error saying how to get it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from llmctl.errors import InvalidInput, NotFound, OfflineError
from llmctl.plan.catalog import catalog, find_catalog
from llmctl.plan.profiles import ModelProfile, profile_from_config, profile_from_gguf

GgufLookup = Callable[[str], tuple[dict, int]]
"""name → (GGUF key/values, parameter count); raises NotFound when no such stored model."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _load_config(path: Path, name: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not a readable config.json ({exc})") from None


def from_folder(folder: Path) -> ModelProfile:
    cfg = _load_config(folder / "config.json", str(folder))
    return profile_from_config(cfg, name=folder.name, serve_id=str(folder.resolve()), source="local")


def from_hf_cache(repo_id: str, *, offline: bool) -> ModelProfile | None:
    """config.json from the local Hugging Face cache only (never the network); None if not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return None
    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except (ValueError, OSError):  # HFValidationError (a ValueError) for ids the hub would reject
        return None
    path: str | None = hit if isinstance(hit, str) else None
    if path is None and not offline and os.environ.get("HF_HUB_OFFLINE", "") in ("", "0"):
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(repo_id, "config.json", local_files_only=True)
        except (ValueError, OSError):  # LocalEntryNotFoundError, EntryNotFoundError are OSErrors
            path = None
    if path is None:
        return None
    cfg = _load_config(Path(path), repo_id)
    return profile_from_config(cfg, name=repo_id, serve_id=repo_id, source="hf-cache")


def resolve_model(spec: str, *, offline: bool = False, gguf_lookup: GgufLookup | None = None) -> ModelProfile:
    spec = spec.strip()
    if not spec:
        raise InvalidInput("MODEL is empty")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return from_folder(folder)
        raise InvalidInput(f"{folder} has no config.json", hint="pass a Hugging Face model folder")
    entry = find_catalog(spec)
    if entry is not None:
        return entry.profile()
    if _REPO_ID.match(spec):
        prof = from_hf_cache(spec, offline=offline)
        if prof is not None:
            return prof
    if gguf_lookup is not None:
        try:
            kv, count = gguf_lookup(spec)
        except (NotFound, InvalidInput):  # no such stored model, or not a valid store name at all
            pass
        else:
            return profile_from_gguf(kv, count)
    if _REPO_ID.match(spec):
        hint = f"run `huggingface-cli download {spec} config.json` or pass a folder with config.json"
        if offline:
            raise OfflineError(f"{spec}: config.json is not in the local Hugging Face cache and llmctl is offline",
                               hint=hint)
        raise NotFound(f"{spec}: config.json is not in the local Hugging Face cache (llmctl plan never downloads)",
                       hint=hint)
    raise NotFound(f"no model {spec!r}: not a folder, a catalog model, a cached Hugging Face id or a stored model",
                   hint="built-in catalog: " + ", ".join(e.aliases[0] if e.aliases else e.name for e in catalog()))
