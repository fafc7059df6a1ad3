"""`push NAME`: a stored model to its registry (`package --push` ends here too).

Blobs that another repository of the same registry is known to hold (from the store's own tags on that
registry, e.g. a model pulled from `reg/a` and re-tagged `reg/b`) are offered to the registry as
cross-repository mounts, so they never cross the network again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llmctl.api.models import open_store
from llmctl.api.pull import check_online
from llmctl.errors import NotFound
from llmctl.names import parse_name, short
from llmctl.oci.descriptor import Descriptor
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.oci.registry import RetryPolicy, connect
from llmctl.oci.registry.push import CHUNK_SIZE, push_artifact
from llmctl.oci.registry.transfer import Tracker
from llmctl.progress import NullProgress, Progress
from llmctl.settings import Settings

MAX_MOUNT_SOURCES = 3


@dataclass(frozen=True)
class Pushed:
    reference: Reference
    name: str
    digest: str
    blobs: int
    total: int
    uploaded: int  # bytes sent this time (0 for an unchanged model)
    skipped: int  # bytes the registry already had
    mounted: int  # bytes mounted from another repository of the registry
    seconds: float

    def to_json(self) -> dict:
        return {
            "name": self.name, "reference": str(self.reference), "digest": self.digest, "blobs": self.blobs,
            "total_bytes": self.total, "uploaded_bytes": self.uploaded, "skipped_bytes": self.skipped,
            "mounted_bytes": self.mounted, "seconds": round(self.seconds, 3),
        }


class MountSources:
    """digest -> other repositories of the target's registry whose stored manifests reference it.

    Worked out on first use, which comes only when the registry lacks a blob: it reads the manifest of
    every stored model of that registry, which a re-push of an unchanged model (0 bytes) never needs.
    Thread-safe: parallel blob transfers ask at once."""

    def __init__(self, store: Store, target: Reference) -> None:
        self._store, self._target = store, target
        self._map: dict[str, list[str]] | None = None
        self._lock = threading.Lock()

    def __call__(self, digest: str) -> list[str]:
        with self._lock:
            if self._map is None:
                self._map = mount_sources(self._store, self._target)
        return self._map.get(digest, [])


def mount_sources(store: Store, target: Reference) -> dict[str, list[str]]:
    """digest -> other repositories of the target's registry whose stored manifests reference it."""
    entries = [e for e in store.entries()
               if e.reference.registry == target.registry and e.reference.repository != target.repository]
    manifests = store.manifests(e.descriptor for e in entries)  # a manifest under several tags is read once
    out: dict[str, list[str]] = {}
    for entry in entries:
        manifest = manifests.get(entry.descriptor.digest)
        for blob in manifest.blobs() if manifest else ():
            repos = out.setdefault(blob.digest, [])
            if entry.reference.repository not in repos and len(repos) < MAX_MOUNT_SOURCES:
                repos.append(entry.reference.repository)
    return out


def check_stored(settings: Settings, name: str) -> None:
    """Raise NotFound unless `name` is a stored model (the bundled default counts): the gateway's console
    refuses a push of nothing up front, as `/api/push` answers it, instead of starting a job that fails."""
    _stored(settings, open_store(settings), parse_name(settings, name))


def _stored(settings: Settings, store: Store, ref: Reference) -> Descriptor:
    try:
        return store.resolve(ref)
    except NotFound:
        from llmctl.api.models import get_model

        get_model(settings, ref)  # installs the bundled default on first use, else NotFound with a hint
        return store.resolve(ref)


def push(
    settings: Settings,
    name: str,
    *,
    progress: Progress | None = None,
    concurrency: int = 3,
    insecure: bool = False,
    ca_cert: Path | None = None,
    quiet: bool = False,
    retry: RetryPolicy | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Pushed:
    if quiet:
        progress = NullProgress()
    started = time.monotonic()
    ref = parse_name(settings, name)
    check_online(settings, ref.registry)
    store = open_store(settings)
    desc = _stored(settings, store, ref)
    tracker = Tracker(progress, "pushing")
    with connect(settings, ref.registry, insecure=insecure, ca_cert=ca_cert, retry=retry) as client:
        stats = push_artifact(client, store, ref, desc, tracker, concurrency=concurrency,
                              mount_sources=MountSources(store, ref), chunk_size=chunk_size)
    return Pushed(
        reference=ref, name=short(settings, ref), digest=stats.digest, blobs=stats.blobs, total=stats.total,
        uploaded=stats.uploaded, skipped=stats.skipped, mounted=stats.mounted, seconds=time.monotonic() - started,
    )
