"""Pull an artifact from a registry into the store, verifying every byte before the store admits it.

Order: manifest (by tag or digest, digest checked), then the blobs the store lacks, in parallel, largest
first, then the manifest is stored and tagged; a reader never sees a model whose blobs are missing.

Each blob streams into `ingest/<hex>.partial` through `BlobWriter`, which hashes while writing (socket
reads land in one reused 1 MiB buffer, hashed and written from there; the writer flushes to disk in the
background as it goes, so the final fsync is short). An interrupted download (network, registry crash,
Ctrl-C, disk full) keeps that file and the next pull asks for the rest with `Range`. A blob whose bytes
do not hash to its digest is deleted and the pull fails with IntegrityError; when a resumed file fails,
it is fetched once more from byte 0 first, since the old partial bytes, not the registry, may be the
culprit.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Callable

from llmctl.errors import IntegrityError, InvalidModel, RegistryError
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.blobs import BlobWriter
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.oci.space import SpaceRule
from llmctl.oci.registry import errors
from llmctl.oci.registry.auth import repo_scope
from llmctl.oci.registry.client import RegistryClient
from llmctl.oci.registry.http11 import ProtocolError, Response, TransportError
from llmctl.oci.registry.transfer import Tracker, disk_error, run_parallel

MANIFEST_ACCEPT = ", ".join([mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_V2, mt.DOCKER_MANIFEST_LIST])
MAX_MANIFEST = 4 * 1024 * 1024
READ_SIZE = 1024 * 1024  # per read from the socket: fewer, larger writes and hash updates
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class PulledManifest:
    raw: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class PullStats:
    digest: str
    media_type: str
    blobs: int
    downloaded: int  # bytes that crossed the network
    resumed: int  # bytes of partial files reused
    skipped: int  # bytes already in the store
    total: int  # bytes of all blobs


def fetch_manifest(client: RegistryClient, ref: Reference, *, what: str) -> PulledManifest:
    """GET a manifest by tag or digest; an index resolves to its first image manifest."""
    pulled = _get_manifest(client, ref.repository, ref.digest or ref.tag or "latest", what=what,
                           expected=ref.digest)
    if pulled.media_type in mt.INDEX_TYPES or _looks_like_index(pulled.raw):
        chosen = choose_from_index(pulled.raw, what)
        pulled = _get_manifest(client, ref.repository, chosen, what=what, expected=chosen)
    return pulled


def _get_manifest(client: RegistryClient, repository: str, reference: str, *, what: str,
                  expected: str | None) -> PulledManifest:
    resp = client.request("GET", f"/v2/{repository}/manifests/{reference}", scopes=(repo_scope(repository, "pull"),),
                          headers={"Accept": MANIFEST_ACCEPT}, stream=True)
    try:
        if resp.status_code != 200:
            if resp.status_code == 404:
                raise client.error(resp, f"model {what}")
            raise client.error(resp, f"the manifest of {what}")
        try:
            raw_bytes = resp.read(MAX_MANIFEST + 1)
        except TransportError as exc:
            raise client.transport_error(exc) from None
        if len(raw_bytes) > MAX_MANIFEST:
            raise RegistryError(f"{client.registry}: the manifest of {what} is larger than 4 MiB")
    finally:
        resp.close()
    digest = "sha256:" + hashlib.sha256(raw_bytes).hexdigest()
    if expected and digest != expected:
        raise IntegrityError(f"the manifest {client.registry} served for {what} hashes to {digest}, not {expected}")
    announced = resp.headers.get("Docker-Content-Digest", "")
    if announced.startswith("sha256:") and announced != digest:
        raise IntegrityError(f"the manifest of {what} hashes to {digest}, but {client.registry} says {announced}")
    media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        declared = json.loads(raw_bytes).get("mediaType")
    except (ValueError, AttributeError):
        raise InvalidModel(f"the manifest of {what} is not JSON") from None
    if declared in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
        media_type = declared
    elif media_type not in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
        media_type = mt.OCI_MANIFEST
    return PulledManifest(raw_bytes, media_type, digest)


def _looks_like_index(raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and "manifests" in data and "config" not in data


def choose_from_index(raw: bytes, what: str) -> str:
    """The digest of the manifest to use from an index: the first image manifest, preferring linux/amd64
    (or no platform at all, as model artifacts have)."""
    try:
        entries = json.loads(raw).get("manifests") or []
    except (ValueError, AttributeError):
        raise InvalidModel(f"the index of {what} is not JSON") from None
    candidates = [e for e in entries if isinstance(e, dict) and e.get("mediaType", mt.OCI_MANIFEST) in mt.MANIFEST_TYPES]
    if not candidates:
        raise InvalidModel(f"the index of {what} lists no image manifest")

    def rank(e: dict) -> int:
        platform = e.get("platform") or {}
        if not platform:
            return 0
        return 1 if (platform.get("os"), platform.get("architecture")) == ("linux", "amd64") else 2

    best = sorted(candidates, key=rank)[0]
    return Descriptor.from_json(best).digest


def download_blob(client: RegistryClient, store: Store, repository: str, desc: Descriptor, tracker: Tracker) -> tuple[int, int]:
    """Fetch one blob into the store; returns (bytes resumed from a partial file, bytes downloaded)."""
    for fresh in (False, True):
        try:
            return _download_once(client, store, repository, desc, tracker, fresh=fresh)
        except _ResumedCorrupt:
            continue  # the partial file was bad: delete done by commit(); fetch again from byte 0
    raise AssertionError("unreachable")


class _ResumedCorrupt(Exception):
    pass


def _download_once(client: RegistryClient, store: Store, repository: str, desc: Descriptor, tracker: Tracker,
                   *, fresh: bool) -> tuple[int, int]:
    where = f"blob {desc.digest}"
    tracker.check()  # a transfer that failed elsewhere stops the queued ones before they create files
    try:
        writer = store.writer(partial_name=store.partial_name(desc.digest))
    except OSError as exc:
        raise disk_error(exc, where) from None
    try:
        return _fill(client, store, repository, desc, tracker, writer, fresh=fresh)
    except OSError as exc:  # also from closing the partial file on the way out
        raise disk_error(exc, f"{where} to {store.root}") from None
    finally:
        if writer.size == 0:
            writer.path.unlink(missing_ok=True)  # an empty partial file resumes nothing


def _fill(client: RegistryClient, store: Store, repository: str, desc: Descriptor, tracker: Tracker,
          writer: BlobWriter, *, fresh: bool) -> tuple[int, int]:
    """Complete `writer` from the registry, resuming what it holds, then commit it against the digest;
    returns (bytes resumed, bytes downloaded). A broken transfer is retried from where it broke, with a
    fresh retry budget whenever bytes arrived; a name that does not resolve is not retried."""
    where = f"blob {desc.digest}"
    with writer:
        if fresh or writer.size > desc.size:
            writer.truncate()
        resumed = writer.size
        key = tracker.start(desc.digest, desc.size, resumed)
        counted = resumed  # what the tracker counts for this blob: taken back if it starts over

        def restart() -> None:
            nonlocal counted
            tracker.rewind(key, counted)
            counted = 0
            writer.truncate()

        failures = 0
        while writer.size < desc.size:
            tracker.check()
            before = writer.size
            try:
                written = _fetch_rest(client, repository, desc, tracker, writer, key, restart)
                counted += written  # not `counted += _fetch_rest(...)`: a restart inside resets it
            except TransportError as exc:
                failures = 1 if writer.size > before else failures + 1  # progress made: a fresh budget
                if failures >= client.retry.attempts or errors.is_unresolvable(exc):
                    raise client.transport_error(exc) from None
                client.backoff(failures - 1)
        try:
            writer.commit(desc.digest, desc.size)
        except IntegrityError:
            tracker.rewind(key, counted)
            if resumed and not fresh:
                raise _ResumedCorrupt() from None
            raise IntegrityError(f"{client.registry}/{repository} served a corrupt {where}: its bytes do not "
                                 f"match the digest; nothing was stored") from None
        tracker.finish(key, "resumed" if resumed else "done")
        return resumed, writer.size - resumed


def _fetch_rest(client: RegistryClient, repository: str, desc: Descriptor, tracker: Tracker, writer: BlobWriter,
                key: str, restart: Callable[[], None]) -> int:
    """One GET of what `writer` lacks (a Range request when it holds a part); returns the bytes it wrote.
    A server that ignores the Range, or answers 416, starts the blob over (`restart`); a body that ends
    early raises ProtocolError (a TransportError: the caller resumes)."""
    where = f"blob {desc.digest}"
    headers = {"Accept-Encoding": "identity"}
    if writer.size:
        headers["Range"] = f"bytes={writer.size}-"
    resp = client.request("GET", f"/v2/{repository}/blobs/{desc.digest}", headers=headers, stream=True,
                          scopes=(repo_scope(repository, "pull"),), follow_redirects=True, raw_errors=True)
    try:
        if resp.status_code == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != writer.size:
                raise RegistryError(f"{client.registry} answered a Range request for {where} with "
                                    f"the wrong range ({resp.headers.get('Content-Range')})")
        elif resp.status_code == 416:  # the Range refused: take the whole blob again, on the next GET
            restart()
            return 0
        elif resp.status_code == 200:
            if writer.size:  # the server ignored Range: take the whole blob again
                restart()
        else:
            raise client.error(resp, where)
        # one byte more than the descriptor's size is enough to fail the digest check
        written = _copy_body(resp, writer, desc.size + 1, tracker, key)
    finally:
        resp.close()
    if writer.size < desc.size:
        raise ProtocolError("the connection closed before the blob was complete")
    return written


def _copy_body(resp: Response, writer: BlobWriter, stop_at: int, tracker: Tracker, key: str) -> int:
    """Write the body into `writer` until it ends or the writer holds `stop_at` bytes; returns the bytes
    written. The socket is read straight into one 1 MiB buffer (no per-read `bytes`); what arrived before a
    broken connection is written before the error is raised, so a resume keeps it."""
    buf = bytearray(READ_SIZE)
    view = memoryview(buf)
    written = 0
    while writer.size < stop_at:
        tracker.check()
        want = min(len(buf), stop_at - writer.size)
        n, error = 0, None
        while n < want:
            try:
                got = resp.readinto(view[n:want])
            except TransportError as exc:
                error = exc
                break
            if not got:
                break
            n += got
        if n:
            writer.write(view[:n])
            written += n
            tracker.advance(key, n)
        if error is not None:
            raise error
        if n < want:
            break  # the body ended
    return written


def pull_blobs(client: RegistryClient, store: Store, repository: str, manifest: Manifest, tracker: Tracker,
               concurrency: int, space: SpaceRule | None = None) -> tuple[int, int, int]:
    """Download what the store lacks; returns (downloaded, resumed, skipped) bytes. With `space`, the bytes
    still to come must fit the free disk (InsufficientSpace before the first one is written)."""
    seen: set[str] = set()
    missing: list[Descriptor] = []
    skipped = 0
    for blob in manifest.blobs():
        if blob.digest in seen:
            continue
        seen.add(blob.digest)
        if store.has_blob(blob.digest, blob.size):
            skipped += blob.size
        else:
            missing.append(blob)
    missing.sort(key=lambda d: -d.size)
    if space is not None and missing:
        partial = sum(_partial_size(store, d.digest) for d in missing)  # a resume needs only the rest
        space.check(store.ingest_dir, sum(d.size for d in missing) - partial, largest=missing[0].size,
                    what=repository)
    tracker.start_total(sum(d.size for d in missing), len(missing))
    results = run_parallel([lambda d=d: download_blob(client, store, repository, d, tracker) for d in missing],
                           concurrency, tracker)
    tracker.finish_total("up to date" if not missing else None)
    resumed = sum(r for r, _ in results)
    return tracker.transferred, resumed, skipped


def _partial_size(store: Store, digest: str) -> int:
    try:
        return (store.ingest_dir / store.partial_name(digest)).stat().st_size
    except OSError:
        return 0


def pull_artifact(client: RegistryClient, store: Store, ref: Reference, tags: list[Reference], tracker: Tracker,
                  *, concurrency: int = 3, what: str | None = None, space: SpaceRule | None = None) -> PullStats:
    """The whole pull: manifest, blobs, then the manifest into the store under `tags`."""
    what = what or str(ref)
    pulled = fetch_manifest(client, ref, what=what)
    try:
        manifest = Manifest.from_bytes(pulled.raw)
    except InvalidModel as exc:
        raise InvalidModel(f"{what}: {exc}") from None
    with store.writing():
        downloaded, resumed, skipped = pull_blobs(client, store, ref.repository, manifest, tracker, concurrency,
                                                  space)
        try:
            store.put_raw_manifest(pulled.raw, pulled.media_type, tags)
        except OSError as exc:
            raise disk_error(exc, f"the manifest of {what}") from None
    return PullStats(pulled.digest, pulled.media_type, len(manifest.blobs()), downloaded, resumed, skipped,
                     sum(b.size for b in manifest.blobs()))


__all__ = ["PullStats", "choose_from_index", "fetch_manifest", "pull_artifact", "pull_blobs"]
