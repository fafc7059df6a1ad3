"""`pull NAME`: a model from an OCI registry (by tag or digest) or from Hugging Face into the store.

`hf.co/ORG/REPO[:QUANT]` and `huggingface.co/...` go to the Hugging Face source (`sources/hf.py`);
everything else is an OCI reference resolved with the configured default registry and namespace
(`LLMCTL_REGISTRY`), so `team/model:tag` means what the user configured. `ensure_model` calls this when
`run`, `create FROM` or `plan` name a model that is not in the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from llmctl.api.models import open_store
from llmctl.errors import OfflineError
from llmctl.names import is_hf_name, is_loopback, parse_name, short
from llmctl.oci.reference import Reference
from llmctl.oci.registry import RetryPolicy, connect
from llmctl.oci.registry.transfer import Tracker
from llmctl.oci.space import SpaceRule
from llmctl.progress import NullProgress, Progress
from llmctl.settings import Settings


@dataclass(frozen=True)
class Pulled:
    reference: Reference
    name: str  # as the user sees it (short form)
    digest: str
    source: str  # "registry" or "huggingface"
    blobs: int
    total: int  # bytes of the model
    downloaded: int  # bytes that crossed the network this time
    resumed: int  # bytes reused from an interrupted earlier pull
    skipped: int  # bytes the store already had
    seconds: float

    def to_json(self) -> dict:
        return {
            "name": self.name, "reference": str(self.reference), "digest": self.digest, "source": self.source,
            "blobs": self.blobs, "total_bytes": self.total, "downloaded_bytes": self.downloaded,
            "resumed_bytes": self.resumed, "skipped_bytes": self.skipped, "seconds": round(self.seconds, 3),
        }


def space_rule(settings: Settings) -> SpaceRule:
    """What a write into the store must leave free (LLMCTL_DISK_RESERVE) and may be at most (LLMCTL_MAX_BLOB_SIZE)."""
    return SpaceRule(reserve=settings.limits.disk_reserve, max_blob=settings.limits.max_blob_size)


def check_name(settings: Settings, name: str) -> None:
    """Raise InvalidReference for a name no pull can take (`hf.co/`, `hf.co/a b/c`, `Bad//Name`), with no I/O:
    the gateway's console refuses such a job up front instead of starting one that fails a moment later."""
    if is_hf_name(name):
        from llmctl.sources import hf

        hf.parse_name(name)
    else:
        parse_name(settings, name)


def check_online(settings: Settings, registry: str) -> None:
    if settings.offline and not is_loopback(registry):
        raise OfflineError(f"cannot reach {registry}: LLMCTL_OFFLINE is set",
                           hint="unset LLMCTL_OFFLINE, or use a model that is already in the store")


def pull(
    settings: Settings,
    name: str,
    *,
    progress: Progress | None = None,
    concurrency: int = 3,
    insecure: bool = False,
    ca_cert: Path | None = None,
    quiet: bool = False,
    retry: RetryPolicy | None = None,
) -> Pulled:
    """Pull `name` into the store and tag it; returns what was transferred. Raises typed LlmctlErrors."""
    if quiet:
        progress = NullProgress()
    started = time.monotonic()
    if is_hf_name(name):  # sources.hf costs 5 ms to import: only Hugging Face names pay for it
        return _pull_hf(settings, name, progress, started)
    ref = parse_name(settings, name)
    check_online(settings, ref.registry)
    store = open_store(settings)
    tags = [ref] if ref.tag else [ref.with_tag(f"sha256-{ref.digest[7:19]}")] if ref.digest else []
    from llmctl.oci.registry.pull import pull_artifact  # here, not above: `push` imports this module too

    tracker = Tracker(progress, "pulling")
    with connect(settings, ref.registry, insecure=insecure, ca_cert=ca_cert, retry=retry) as client:
        stats = pull_artifact(client, store, ref, tags, tracker, concurrency=concurrency,
                              what=short(settings, ref), space=space_rule(settings))
    return Pulled(
        reference=ref, name=short(settings, ref), digest=stats.digest, source="registry", blobs=stats.blobs,
        total=stats.total, downloaded=stats.downloaded, resumed=stats.resumed, skipped=stats.skipped,
        seconds=time.monotonic() - started,
    )


def _pull_hf(settings: Settings, name: str, progress: Progress | None, started: float) -> Pulled:
    from llmctl.sources import hf

    got = hf.pull(settings, open_store(settings), name, progress=progress)
    return Pulled(reference=got.reference, name=short(settings, got.reference), digest=got.digest,
                  source="huggingface", blobs=got.blobs, total=got.total, downloaded=got.downloaded, resumed=0,
                  skipped=0, seconds=time.monotonic() - started)
