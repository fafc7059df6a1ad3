"""Push a stored artifact: blobs first (skip, mount or upload), the manifest last.

For each blob: `HEAD` it and skip it when the registry has it (so a re-push of an unchanged model sends
0 bytes); else try a cross-repository mount from a repository of the same registry known to hold it
(a failed mount costs nothing: the registry answers with an ordinary upload session); else upload it,
straight from the store's file with sendfile(2): one `PUT` up to `chunk_size`, `PATCH` chunks above it
(for registries and proxies that cap request bodies). Blobs go in parallel, largest first, each with its
own HEAD. The manifest goes last, byte for byte as stored, so its digest on the registry is the one in
the store.

Blob bytes are not re-hashed on the way out: the store only holds verified blobs, and the registry
checks the digest on commit. That keeps push at disk/network speed: over loopback the registry's own
hashing is the limit (docs/benchmarks.md, `## Transfer`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urljoin

from llmctl.errors import IntegrityError, RegistryError
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.oci.registry import errors
from llmctl.oci.registry.auth import repo_scope
from llmctl.oci.registry.client import RegistryClient
from llmctl.oci.registry.http11 import FileBody, Response, TransportError
from llmctl.oci.registry.transfer import Tracker, run_parallel

CHUNK_SIZE = 256 * 1024 * 1024
SKIPPED, MOUNTED, UPLOADED = "skipped", "mounted", "uploaded"


@dataclass(frozen=True)
class PushStats:
    digest: str
    blobs: int
    uploaded: int  # bytes sent
    skipped: int  # bytes the registry already had
    mounted: int  # bytes mounted from another repository
    total: int


def _absolute(client: RegistryClient, location: str) -> str:
    return urljoin(client.base + "/", location)


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={quote(digest)}"


def push_blob(client: RegistryClient, store: Store, repository: str, desc: Descriptor, tracker: Tracker,
              *, mount_from: Callable[[str], list[str]] | None = None, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """Make one blob present in `repository`; returns (what happened, bytes uploaded). `mount_from(digest)`
    names repositories to mount from; it is asked only when the registry lacks the blob."""
    scopes = (repo_scope(repository, "pull", "push"),)
    what = f"blob {desc.digest} of {repository}"
    resp = client.request("HEAD", f"/v2/{repository}/blobs/{desc.digest}", scopes=scopes)
    resp.close()
    if resp.status_code == 200:
        return SKIPPED, 0
    if resp.status_code != 404:
        raise client.error(resp, what)

    location: str | None = None
    for source in mount_from(desc.digest) if mount_from else ():
        if source == repository:
            continue
        resp = client.request("POST", f"/v2/{repository}/blobs/uploads/?mount={quote(desc.digest)}&from={quote(source)}",
                              scopes=(*scopes, repo_scope(source, "pull")))
        resp.close()
        if resp.status_code == 201:
            return MOUNTED, 0
        if resp.status_code == 202 and resp.headers.get("Location"):
            location = _absolute(client, resp.headers["Location"])  # mount refused: upload into this session
            break

    path = store.blob_path(desc.digest)
    key = tracker.start(desc.digest, desc.size)
    failures = 0
    while True:
        tracker.check()
        sent = [0]

        def on_bytes(n: int) -> None:
            sent[0] += n
            tracker.advance(key, n)

        try:
            if location is None:
                resp = client.request("POST", f"/v2/{repository}/blobs/uploads/", scopes=scopes, raw_errors=True)
                resp.close()
                if resp.status_code != 202 or not resp.headers.get("Location"):
                    raise client.error(resp, f"an upload to {repository}")
                location = _absolute(client, resp.headers["Location"])
            if desc.size <= chunk_size:
                _put_whole(client, location, path, desc, scopes, on_bytes, tracker, what)
            else:
                _put_chunked(client, location, path, desc, scopes, on_bytes, tracker, what, chunk_size)
            tracker.finish(key, "pushed")
            return UPLOADED, desc.size
        except (TransportError, _Retryable) as exc:
            failures += 1
            tracker.rewind(key, sent[0])
            if failures >= client.retry.attempts or errors.is_unresolvable(exc):
                if isinstance(exc, _Retryable):
                    raise exc.error from None
                raise client.transport_error(exc) from None
            client.backoff(failures - 1)
            location = None  # a half-sent body may be in the old session: start a new one


class _Retryable(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _check_upload(client: RegistryClient, resp: Response, expected: int, what: str) -> None:
    if resp.status_code == expected:
        return
    error = client.error(resp, what)
    if resp.status_code >= 500 or resp.status_code == 429:
        raise _Retryable(error)
    raise error


def _put_whole(client: RegistryClient, location: str, path: Path, desc: Descriptor, scopes: tuple[str, ...],
               on_bytes, tracker: Tracker, what: str) -> None:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}
    body = FileBody(path, 0, desc.size, on_bytes=on_bytes, check=tracker.check)
    resp = client.request("PUT", _with_digest(location, desc.digest), scopes=scopes, headers=headers, body=body,
                          retry=False, raw_errors=True)
    resp.close()
    _check_upload(client, resp, 201, what)
    _check_committed(client, resp, desc)


def _put_chunked(client: RegistryClient, location: str, path: Path, desc: Descriptor, scopes: tuple[str, ...],
                 on_bytes, tracker: Tracker, what: str, chunk_size: int) -> None:
    offset = 0
    while offset < desc.size:
        n = min(chunk_size, desc.size - offset)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(n),
                   "Content-Range": f"{offset}-{offset + n - 1}"}
        body = FileBody(path, offset, n, on_bytes=on_bytes, check=tracker.check)
        resp = client.request("PATCH", location, scopes=scopes, headers=headers, body=body, retry=False,
                              raw_errors=True)
        resp.close()
        _check_upload(client, resp, 202, what)
        location = _absolute(client, resp.headers.get("Location") or location)
        offset += n
    resp = client.request("PUT", _with_digest(location, desc.digest), scopes=scopes,
                          headers={"Content-Length": "0", "Content-Type": "application/octet-stream"}, body=b"",
                          retry=False, raw_errors=True)
    resp.close()
    _check_upload(client, resp, 201, what)
    _check_committed(client, resp, desc)


def _check_committed(client: RegistryClient, resp: Response, desc: Descriptor) -> None:
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != desc.digest:
        raise IntegrityError(f"{client.registry} stored blob {desc.digest} under digest {got}")


def put_manifest(client: RegistryClient, repository: str, reference: str, raw: bytes, media_type: str,
                 digest: str) -> None:
    resp = client.request("PUT", f"/v2/{repository}/manifests/{reference}",
                          scopes=(repo_scope(repository, "pull", "push"),),
                          headers={"Content-Type": media_type}, body=raw)
    resp.close()
    if resp.status_code not in (200, 201):
        raise client.error(resp, f"the manifest of {repository}:{reference}")
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != digest:
        raise RegistryError(f"{client.registry} rewrote the manifest of {repository}:{reference} "
                            f"(digest {got} instead of {digest})")


def push_artifact(client: RegistryClient, store: Store, target: Reference, desc: Descriptor, tracker: Tracker, *,
                  concurrency: int = 3, mount_sources: dict[str, list[str]] | None = None,
                  chunk_size: int = CHUNK_SIZE) -> PushStats:
    """Push the stored manifest `desc` and its blobs to `target` (its tag, or its digest when it has none)."""
    raw = store.read_blob(desc.digest)
    manifest = Manifest.from_bytes(raw)
    try:
        media_type = json.loads(raw).get("mediaType") or desc.media_type or mt.OCI_MANIFEST
    except ValueError:
        media_type = desc.media_type or mt.OCI_MANIFEST
    blobs: dict[str, Descriptor] = {}
    for blob in manifest.blobs():
        if not store.has_blob(blob.digest, blob.size):
            raise IntegrityError(f"blob {blob.digest} of {target} is missing from the store",
                                 hint="run `llmctl verify`, then pull or re-create the model")
        blobs.setdefault(blob.digest, blob)
    ordered = sorted(blobs.values(), key=lambda d: -d.size)
    tracker.start_total(sum(d.size for d in ordered), len(ordered))
    results = run_parallel(
        [lambda d=d: push_blob(client, store, target.repository, d, tracker, mount_from=mount_sources,
                               chunk_size=chunk_size) for d in ordered],
        concurrency, tracker,
    )
    for (outcome, _), d in zip(results, ordered):
        if outcome != UPLOADED:
            tracker.skip(d.size)
    put_manifest(client, target.repository, target.tag or desc.digest, raw, media_type, desc.digest)
    tracker.finish_total()
    by = {SKIPPED: 0, MOUNTED: 0, UPLOADED: 0}
    for (outcome, _), d in zip(results, ordered):
        by[outcome] += d.size
    return PushStats(desc.digest, len(ordered), tracker.transferred, by[SKIPPED], by[MOUNTED],
                     sum(d.size for d in ordered))

