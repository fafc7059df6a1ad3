"""MODEL -> what the planner sizes and where the pods get the weights: the I/O half of `llmctl plan`.

Order: a local folder with config.json (its path never reaches a plan: the pods' source must be given);
the built-in catalog; a Hugging Face id (its cached config.json, else just config.json and the shard index
from the Hub when online); a model in the llmctl store (config.json from a safetensors artifact's config
archive, the GGUF header of a GGUF model); a registry reference (manifest and config archive only, never the
weights). Each answer carries the default `Weights` for the rendered pods, pinned by digest where one exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from llmctl.api.plan_artifact import ArtifactModel, from_store_or_registry
from llmctl.artifact.layer_files import load_config_json
from llmctl.errors import AuthError, InvalidInput, LlmctlError, NotFound, OfflineError, RegistryError
from llmctl.names import is_loopback
from llmctl.plan.catalog import catalog, find_catalog
from llmctl.plan.gguf_profile import profile_from_gguf
from llmctl.plan.hfconfig import profile_from_config
from llmctl.plan.profiles import ModelProfile
from llmctl.plan.weights import Weights
from llmctl.settings import DEFAULT_REGISTRY, Settings

HF_ENDPOINT = "https://huggingface.co"
GATED_ORGS = ("meta-llama", "google")
"""Hugging Face organisations whose model repositories ask users to accept a license before download (every
meta-llama Llama repo and google's Gemma repos say so on their model cards). Used when the Hub cannot be
asked (offline, cache only); online, the Hub's own `gated` field decides."""
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ResolvedModel:
    """The profile the planner sizes, and the weights source rendered pods use unless `--model-source` says
    otherwise (None: the pods' source must be given, e.g. for a local folder)."""

    profile: ModelProfile
    weights: Weights | None
    notes: tuple[str, ...] = ()


def from_folder(folder: Path) -> ResolvedModel:
    """A local model folder: sized from its config.json; rendered pods need `--model-source`."""
    try:
        data = (folder / "config.json").read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{folder.name}/config.json: not readable ({exc.strerror})") from None
    cfg = load_config_json(data, folder.name)
    profile = profile_from_config(cfg, name=folder.name, serve_id=folder.name, source="local")
    return ResolvedModel(profile, None)


def gated_by_org(repo_id: str) -> bool:
    return repo_id.split("/", 1)[0] in GATED_ORGS


def hub_allowed(settings: Settings) -> bool:
    """The Hub may be asked: not HF_HUB_OFFLINE, and LLMCTL_OFFLINE only lets a loopback endpoint through
    (as `pull hf.co/...` does)."""
    endpoint = settings.hf_endpoint or HF_ENDPOINT
    return not settings.hf_hub_offline and (not settings.offline or is_loopback(urlparse(endpoint).netloc))


def _hub_error(exc: Exception, repo_id: str) -> LlmctlError:
    from llmctl.sources import hf_http as h

    kind, detail = h.hub_failure(exc)
    if kind == h.UNAVAILABLE:  # llmctl's retries ran out on a 429/5xx
        return RegistryError(f"Hugging Face is unavailable for {repo_id}'s config.json: {detail}")
    if kind == h.GATED:
        return AuthError(f"{repo_id} is gated on Hugging Face", hint="accept its terms on huggingface.co, set HF_TOKEN")
    if kind == h.NO_REPO:
        return NotFound(f"{repo_id}: no such model on Hugging Face", hint="check the id; a private one needs HF_TOKEN")
    if kind in (h.UNREACHABLE, h.NOT_CACHED, h.HUB_OFFLINE):
        return OfflineError(f"cannot reach Hugging Face for {repo_id}'s config.json, and it is not in the local cache",
                            hint=f"check the network (or HF_ENDPOINT), or run `huggingface-cli download {repo_id} "
                            "config.json` where the Hub is reachable")
    if kind == h.NO_FILE:
        return NotFound(f"{repo_id} has no config.json on Hugging Face", hint="is it a GGUF-only repository?")
    if kind == h.REFUSED:
        return AuthError(f"Hugging Face refused access to {repo_id} ({detail})", hint="set HF_TOKEN")
    return RegistryError(f"Hugging Face failed for {repo_id}: {detail}")


def _hf_file(settings: Settings, repo_id: str, filename: str, *, online: bool) -> Path | None:
    """A file of the repository from the local cache, else (online) downloaded into it; None when absent."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=settings.hf_cache)
    except (ValueError, OSError):  # HFValidationError (a ValueError) for ids the Hub would reject
        return None
    if isinstance(hit, str):
        return Path(hit)
    if not online:
        return None
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=settings.hf_cache, token=settings.hf_token,
                                    endpoint=settings.hf_endpoint or HF_ENDPOINT))
    except Exception as exc:  # huggingface_hub raises its own hierarchy and httpx errors
        from huggingface_hub import errors as hf_errors

        if filename != "config.json" and isinstance(exc, hf_errors.EntryNotFoundError):
            return None  # optional files (the shard index) may not exist
        raise _hub_error(exc, repo_id) from None


def _hub_info(settings: Settings, repo_id: str) -> tuple[bool, int]:
    """(gated, bytes of the *.safetensors files) from the Hub's model info; (by organisation, 0) on failure."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=settings.hf_endpoint or HF_ENDPOINT, token=settings.hf_token).model_info(
            repo_id, files_metadata=True)
    except Exception:  # the size and the gate are refinements: config.json was readable
        return gated_by_org(repo_id), 0
    size = sum(int(getattr(s, "size", 0) or 0) for s in (info.siblings or []) if s.rfilename.endswith(".safetensors"))
    return bool(info.gated) or gated_by_org(repo_id), size


def _index_size(path: Path | None) -> int:
    """metadata.total_size of model.safetensors.index.json (the weights' bytes), 0 when unknown."""
    if path is None:
        return 0
    try:
        return max(0, int(json.loads(path.read_bytes()).get("metadata", {}).get("total_size", 0)))
    except (OSError, ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        return 0  # a refinement from a file the repository controls: unreadable means unknown


def from_hf(settings: Settings, repo_id: str, *, online: bool) -> ResolvedModel | None:
    """config.json of a Hugging Face id: cached, or fetched alone (with the shard index) when online; None
    when neither has it. Pods download the model themselves (`hf:`)."""
    if online:
        from llmctl.sources.hf_http import use_hub_client

        use_hub_client(settings.hf_retry_seconds)
    path = _hf_file(settings, repo_id, "config.json", online=online)
    if path is None:
        return None
    cfg = load_config_json(path.read_bytes(), repo_id)
    size = _index_size(_hf_file(settings, repo_id, "model.safetensors.index.json", online=online))
    gated = gated_by_org(repo_id)
    if online:
        gated, listed = _hub_info(settings, repo_id)
        size = size or listed
    profile = profile_from_config(cfg, name=repo_id, serve_id=repo_id, source="hf" if online else "hf-cache")
    return ResolvedModel(profile, Weights("hf", repo_id, size_bytes=size, gated=gated))


def from_catalog(spec: str) -> ResolvedModel | None:
    entry = find_catalog(spec)
    if entry is None:
        return None
    profile = entry.profile()
    return ResolvedModel(profile, Weights("hf", profile.serve_id, gated=gated_by_org(profile.serve_id)))


def resolve_model(settings: Settings, spec: str) -> ResolvedModel:
    """MODEL as `llmctl plan` takes it; typed LlmctlErrors say what was tried and how to get the config."""
    spec = spec.strip()
    if not spec:
        raise InvalidInput("MODEL is empty")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return from_folder(folder)
        raise InvalidInput(f"{folder.name} has no config.json", hint="pass a Hugging Face model folder")
    found = from_catalog(spec)
    if found is None and _REPO_ID.match(spec):
        found = from_hf(settings, spec, online=False)
    if found is None:
        artifact = from_store_or_registry(settings, spec, pull=_registry_named(settings, spec))
        found = from_artifact(artifact) if artifact is not None else None
    if found is None and _REPO_ID.match(spec) and hub_allowed(settings):
        found = from_hf(settings, spec, online=True)
    if found is not None:
        return found
    if _REPO_ID.match(spec):
        hint = f"run `huggingface-cli download {spec} config.json`, or pass a folder with config.json"
        if settings.offline or settings.hf_hub_offline:
            raise OfflineError(f"{spec}: config.json is not in the local Hugging Face cache and llmctl is offline",
                               hint=hint)
        raise NotFound(f"{spec}: no config.json on Hugging Face or in its local cache", hint=hint)
    raise NotFound(f"no model {spec!r}: not a folder, a catalog model, a Hugging Face id or a stored model",
                   hint="built-in catalog: " + ", ".join(e.aliases[0] if e.aliases else e.name for e in catalog()))


def from_artifact(a: ArtifactModel) -> ResolvedModel:
    if a.gguf is not None:
        return ResolvedModel(profile_from_gguf(*a.gguf), None, a.notes)
    assert a.config is not None and a.weights is not None
    profile = profile_from_config(a.config, name=a.name, serve_id=a.weights.folder, source="oci")
    return ResolvedModel(profile, a.weights, a.notes)


def _registry_named(settings: Settings, name: str) -> bool:
    """Whether a name not in the store should be looked up in its registry: `org/name` is a Hugging Face id to
    `plan` before it is a Docker Hub repository, so only names with a registry host (or under a configured
    LLMCTL_REGISTRY) are fetched, as `run` fetches them."""
    head = name.split("/", 1)[0] if "/" in name else ""
    return "." in head or ":" in head or head == "localhost" or settings.registry != DEFAULT_REGISTRY
