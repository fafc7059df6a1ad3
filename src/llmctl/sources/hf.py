"""`pull hf.co/ORG/REPO[:QUANT]`: GGUF (or safetensors) models from Hugging Face, with Ollama's name syntax.

The repository's files are listed with huggingface_hub; the quantization tag picks the GGUF (default
Q4_K_M, else the only one; a sharded GGUF brings all its shards, a `mmproj*.gguf` comes along as the
projector); the files are downloaded through huggingface_hub's own cache (so HF_TOKEN, HF_ENDPOINT and
HF_HOME work as in every other HF tool, and a second pull downloads nothing), then streamed into the store,
each checked against the sha256 the Hub lists for it. License (a LICENSE file, else the model card's
`license`), chat template (`chat_template.jinja`, else the GGUF's own) and Ollama-style `template`/`system`/
`params` files become layers.

A repository with safetensors weights and no GGUF is pulled as Docker Model Runner packages a safetensors
folder (`sources/hf_safetensors.py`).

Hugging Face repository names have capitals; store references do not, so the model is stored as
`hf.co/org/repo:QUANT` in lower case and shown that way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable
from urllib.parse import urlparse

from llmctl.errors import AuthError, IntegrityError, InvalidInput, InvalidReference, NotFound, OfflineError, RegistryError
from llmctl.oci import mediatypes as mt
from llmctl.oci.blobs import copy_into
from llmctl.oci.descriptor import Descriptor
from llmctl.oci.layout import Store
from llmctl.names import is_hf_name, is_loopback
from llmctl.oci.reference import Reference, parse
from llmctl.oci.registry.transfer import disk_error
from llmctl.progress import NullProgress, Progress
from llmctl.settings import Settings

# `name-00001-of-00003.gguf`, as llmctl.artifact.ingest.SHARD (not imported: it loads the GGUF reader and numpy,
# and `api.pull` imports this module for every Hugging Face name)
SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
STORE_REGISTRY = "hf.co"
DEFAULT_QUANT = "Q4_K_M"
DEFAULT_ENDPOINT = "https://huggingface.co"
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "license.md", "license.txt")
EXTRA_FILES = {"chat_template.jinja": mt.CHAT_TEMPLATE, "template": mt.TEMPLATE, "system": mt.SYSTEM,
               "params": mt.PARAMS}


@dataclass(frozen=True)
class HfName:
    repo_id: str  # as Hugging Face spells it, capitals kept
    quant: str | None  # None: the default choice
    reference: Reference  # where it goes in the store


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files only; small text files have a git oid instead
    oid: str | None = None  # the git blob id: sha1 of b"blob <size>\0" + content


@dataclass(frozen=True)
class HfPull:
    """What `pull` stored: `api.pull` turns it into the `Pulled` every pull returns."""

    reference: Reference
    digest: str
    blobs: int  # layers + config
    total: int  # bytes of the model
    downloaded: int  # bytes of the files fetched through the Hugging Face cache


__all__ = ["HfName", "HfPull", "RemoteFile", "is_hf_name", "parse_name", "pull", "select_projector",
           "select_weights"]


def parse_name(name: str) -> HfName:
    text = re.sub(r"^https?://", "", name.strip())
    _, _, rest = text.partition("/")
    repo_id, _, quant = rest.partition(":")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidReference(f"invalid Hugging Face name {name!r}: expected hf.co/ORG/REPO[:QUANT]")
    quant = quant or None
    tag = quant if quant and quant.lower() != "latest" else "latest"
    try:
        reference = parse(f"{STORE_REGISTRY}/{repo_id.lower()}:{tag}")
    except InvalidReference as exc:
        raise InvalidReference(f"cannot store {name!r} under a model name: {exc}") from None
    return HfName(repo_id, quant if tag != "latest" else None, reference)


# -- choosing files (pure) -------------------------------------------------------------------------------
def _quant_matches(path: str, quant: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(quant)}(?![A-Za-z0-9_])", path, re.IGNORECASE) is not None


def gguf_groups(files: list[RemoteFile]) -> dict[str, list[RemoteFile]]:
    """Model GGUFs grouped so that the shards of one split model are one group, in shard order."""
    groups: dict[str, list[RemoteFile]] = {}
    for f in files:
        name = PurePosixPath(f.path).name
        if not name.lower().endswith(".gguf") or "mmproj" in name.lower():
            continue
        m = SHARD.match(name)
        key = str(PurePosixPath(f.path).parent / m["stem"]) if m else f.path
        groups.setdefault(key, []).append(f)
    for key, members in groups.items():
        members.sort(key=lambda f: f.path)
        first = SHARD.match(PurePosixPath(members[0].path).name)
        if first and len(members) != int(first["count"]):
            raise NotFound(f"split model {key} is incomplete on Hugging Face: {len(members)} of {first['count']} shards")
    return groups


def quant_label(key: str) -> str:
    m = re.search(r"(?<![A-Za-z0-9])(I?Q\d[A-Za-z0-9_]*|F16|F32|BF16)(?=$|[-.])", PurePosixPath(key).name.removesuffix(".gguf"),
                  re.IGNORECASE)
    return m.group(1) if m else PurePosixPath(key).name


def select_weights(files: list[RemoteFile], quant: str | None, repo_id: str) -> list[RemoteFile]:
    groups = gguf_groups(files)
    if not groups:
        raise NotFound(f"hf.co/{repo_id} has no GGUF or safetensors files",
                       hint="llmctl pulls GGUF and safetensors models from Hugging Face")
    available = ", ".join(sorted({quant_label(k) for k in groups}))
    if quant is None:
        default = [k for k in sorted(groups) if _quant_matches(k, DEFAULT_QUANT)]
        if default:
            return groups[default[0]]
        if len(groups) == 1:
            return next(iter(groups.values()))
        raise InvalidInput(f"hf.co/{repo_id} has several GGUF files and no {DEFAULT_QUANT}; name one as a tag",
                           hint=f"available: {available}")
    matching = [k for k in sorted(groups) if _quant_matches(k, quant)]
    if not matching:
        raise NotFound(f"hf.co/{repo_id} has no GGUF for quantization {quant!r}", hint=f"available: {available}")
    return groups[matching[0]]


def select_projector(files: list[RemoteFile]) -> RemoteFile | None:
    projectors = sorted((f for f in files if PurePosixPath(f.path).name.lower().startswith("mmproj")
                         and f.path.lower().endswith(".gguf")), key=lambda f: f.path)
    preferred = [f for f in projectors if "f16" in f.path.lower()]
    return (preferred or projectors or [None])[0]


# -- the Hub ----------------------------------------------------------------------------------------------
def _hub_error(exc: Exception, repo_id: str) -> Exception:
    from llmctl.sources import hf_http as h

    kind, detail = h.hub_failure(exc)
    if kind == h.UNAVAILABLE:
        return RegistryError(f"Hugging Face is unavailable for hf.co/{repo_id}: {detail}")
    if kind == h.UNREACHABLE:
        return OfflineError(f"cannot reach Hugging Face for hf.co/{repo_id} ({detail})",
                            hint="check the network (or HF_ENDPOINT) and pull again")
    if kind == h.GATED:
        return AuthError(f"hf.co/{repo_id} is gated", hint="accept its terms on huggingface.co and set HF_TOKEN")
    if kind == h.NO_REPO:
        return NotFound(f"model hf.co/{repo_id} not found on Hugging Face",
                        hint="check the name; a private repository needs HF_TOKEN")
    if kind == h.NOT_CACHED:
        return OfflineError(f"cannot reach Hugging Face for hf.co/{repo_id}, and the file is not in the local cache",
                            hint="check the network (or HF_ENDPOINT) and pull again")
    if kind == h.HUB_OFFLINE:
        return OfflineError(f"cannot reach Hugging Face for hf.co/{repo_id}: HF_HUB_OFFLINE is set")
    if kind == h.NO_FILE:
        return NotFound(f"a file of hf.co/{repo_id} is gone from Hugging Face: {detail}")
    if kind == h.REFUSED:
        return AuthError(f"Hugging Face refused access to hf.co/{repo_id} ({detail})", hint="set HF_TOKEN")
    return RegistryError(f"Hugging Face failed for hf.co/{repo_id}: {detail}")


def _progress_class(progress: Progress) -> type:
    """A tqdm stand-in that huggingface_hub drives; it forwards to our Progress."""

    class Bar:
        def __init__(self, *, total: int | None = None, initial: int = 0, desc: str | None = None, **_: Any) -> None:
            self.key = f"hf:{desc}:{id(self)}"
            progress.start(self.key, f"downloading {desc}", total)
            if initial:
                progress.advance(self.key, initial)

        def update(self, n: int | float | None = 1) -> None:
            if n:
                progress.advance(self.key, int(n))

        def close(self) -> None:
            progress.finish(self.key)

        def __enter__(self) -> "Bar":
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return Bar


def _ingest(store: Store, path: Path, remote: RemoteFile, media_type: str, progress: Progress) -> Descriptor:
    """Stream a downloaded file into the store, verified against the sha256 the Hub listed."""
    from llmctl.artifact.build import layer

    key = f"ingest:{remote.path}"
    progress.start(key, f"verifying {PurePosixPath(remote.path).name}", remote.size)
    expected = f"sha256:{remote.sha256}" if remote.sha256 else None
    try:
        with open(path, "rb") as source, store.writer() as writer:
            copy_into(writer, source, lambda n: progress.advance(key, n))
            written = writer.commit(expected, remote.size if expected else None)
    except IntegrityError:
        raise IntegrityError(f"{remote.path} in the Hugging Face cache ({path}) does not match the sha256 the Hub "
                             "lists; nothing was stored", hint="delete that file from the cache and pull again") from None
    except OSError as exc:
        raise disk_error(exc, f"{remote.path} into {store.root}") from None
    progress.finish(key, "done")
    return layer(media_type, written.digest, written.size, PurePosixPath(remote.path).name)


def pull(settings: Settings, store: Store, name: str, *, progress: Progress | None = None) -> HfPull:
    """Download `hf.co/ORG/REPO[:QUANT]` through the Hugging Face cache into `store` and tag it."""
    progress = progress or NullProgress()
    hf = parse_name(name)
    endpoint = settings.hf_endpoint or DEFAULT_ENDPOINT
    host = urlparse(endpoint).netloc
    if settings.offline and not is_loopback(host):
        raise OfflineError(f"cannot reach Hugging Face for hf.co/{hf.repo_id}: LLMCTL_OFFLINE is set")
    if settings.hf_hub_offline:  # listing a repository needs the Hub: huggingface_hub would refuse it anyway
        raise OfflineError(f"cannot reach Hugging Face for hf.co/{hf.repo_id}: HF_HUB_OFFLINE is set")

    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    from llmctl.sources.hf_http import use_hub_client

    use_hub_client(settings.hf_retry_seconds)
    api = HfApi(endpoint=endpoint, token=settings.hf_token)
    try:
        tree = [e for e in api.list_repo_tree(hf.repo_id, recursive=True) if isinstance(e, RepoFile)]
    except Exception as exc:  # huggingface_hub raises its own hierarchy and httpx errors
        raise _hub_error(exc, hf.repo_id) from None
    files = [RemoteFile(e.path, int(e.size), e.lfs.sha256 if e.lfs else None, e.blob_id) for e in tree]
    info = _model_info(api, hf.repo_id)
    download = _downloader(settings, hf, endpoint, progress)
    if not gguf_groups(files) and any(f.path.endswith(".safetensors") for f in files):
        from llmctl.sources.hf_safetensors import store_safetensors

        return store_safetensors(store, hf, files, info, download, progress)
    return _store_gguf(store, hf, files, info, download, progress)


def _downloader(settings: Settings, hf: HfName, endpoint: str, progress: Progress) -> Callable[[RemoteFile], Path]:
    """A function that brings one file of the repository into the Hugging Face cache and says where it is."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    # OSErrors all: the Hub's answers (404, 401, gated), an unreachable Hub and HF_HUB_OFFLINE, not the disk's
    hub_errors = (hf_errors.HfHubHTTPError, hf_errors.EntryNotFoundError, hf_errors.OfflineModeIsEnabled)

    def download(remote: RemoteFile) -> Path:
        try:
            return Path(hf_hub_download(hf.repo_id, remote.path, endpoint=endpoint, token=settings.hf_token,
                                        cache_dir=settings.hf_cache, tqdm_class=_progress_class(progress)))
        except hub_errors as exc:
            raise _hub_error(exc, hf.repo_id) from None
        except OSError as exc:
            raise disk_error(exc, f"{remote.path} into the Hugging Face cache") from None
        except Exception as exc:
            raise _hub_error(exc, hf.repo_id) from None

    return download


def _store_gguf(store: Store, hf: HfName, files: list[RemoteFile], info: Any,
                download: Callable[[RemoteFile], Path], progress: Progress) -> HfPull:
    """The GGUF (all its shards) the tag picks, its projector and the repository's companions, as one model."""
    from llmctl.artifact.ingest import check_gguf, commit_model, facts_for_shards

    weights = select_weights(files, hf.quant, hf.repo_id)
    projector = select_projector(files)
    weight_paths = [download(f) for f in weights]
    infos = [check_gguf(p) for p in weight_paths]
    facts = facts_for_shards(infos)
    downloaded = sum(f.size for f in weights)
    with store.writing():
        layers = [_ingest(store, p, f, mt.GGUF, progress) for p, f in zip(weight_paths, weights)]
        if projector is not None:
            layers.append(_ingest(store, download(projector), projector, mt.GGUF_MMPROJ, progress))
            downloaded += projector.size
        layers += _companion_layers(store, hf, {f.path: f for f in files}, info, download, infos[0].chat_template)
        committed = commit_model(store, [hf.reference], layers, facts, created=_created(info))
    total = sum(d.size for d in layers)
    return HfPull(reference=hf.reference, digest=committed.digest, blobs=len(layers) + 1, total=total,
                  downloaded=downloaded)


def _companion_layers(store: Store, hf: HfName, by_name: dict[str, RemoteFile], info: Any,
                      download: Callable[[RemoteFile], Path], gguf_template: str | None) -> list[Descriptor]:
    """The license (the LICENSE file, else the card's), the EXTRA_FILES, and the GGUF's own chat template when
    the repository has no chat_template.jinja."""
    from llmctl.artifact.ingest import ingest_text

    layers = []
    license_file = next((by_name[n] for n in LICENSE_FILES if n in by_name), None)
    if license_file is not None:
        layers.append(ingest_text(store, download(license_file).read_bytes(), mt.LICENSE))
    else:
        text = _card_license(info, hf.repo_id)
        if text:
            layers.append(ingest_text(store, text, mt.LICENSE))
    has_template = False
    for filename, media_type in EXTRA_FILES.items():
        if filename in by_name:
            data = download(by_name[filename]).read_bytes()
            if media_type == mt.PARAMS:
                _check_params(data, hf.repo_id)
            layers.append(ingest_text(store, data, media_type))
            has_template = has_template or media_type == mt.CHAT_TEMPLATE
    if not has_template and gguf_template:
        layers.append(ingest_text(store, gguf_template, mt.CHAT_TEMPLATE))
    return layers


def _model_info(api: Any, repo_id: str) -> Any:
    try:
        return api.model_info(repo_id)
    except Exception:  # the card is a nicety: a listing that worked is enough to pull
        return None


def _card_license(info: Any, repo_id: str) -> str | None:
    """The model card's `license` (and `license_link`), when the repository has no LICENSE file."""
    card = getattr(info, "card_data", None) or {}
    get = card.get if hasattr(card, "get") else (lambda k, d=None: getattr(card, k, d))
    license_id = get("license", None)
    if not license_id:
        return None
    link = get("license_link", None)
    text = f"License: {license_id}" + (f" ({link})" if link else "")
    return text + f"\nSource: https://huggingface.co/{repo_id}\n"


def _created(info: Any) -> str | None:
    """The repository's last commit time: the same files give the same model digest on every pull."""
    when = getattr(info, "last_modified", None)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(when, "strftime") else None


def _check_params(data: bytes, repo_id: str) -> None:
    try:
        value = json.loads(data)
    except ValueError:
        raise InvalidInput(f"hf.co/{repo_id}: its `params` file is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"hf.co/{repo_id}: its `params` file is not a JSON object")
