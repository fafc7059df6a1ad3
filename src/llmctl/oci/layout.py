"""The local store: a standard OCI Image Layout (`oci-layout`, `index.json`, `blobs/sha256/`).

skopeo, oras and umoci read it as is: each tag is one `index.json` entry whose
`org.opencontainers.image.ref.name` annotation holds the full reference. Consistency under concurrency
and `kill -9` comes from three rules:
- blobs are published by atomic rename only when complete and verified (`blobs.BlobWriter`);
- `index.json` is replaced atomically (temp + fsync + rename) under `ingest/index.lock`;
- writers hold `ingest/gc.lock` shared from their first blob to their manifest; garbage collection holds
  it exclusive, so it never removes a blob that a running command is about to reference.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from llmctl.errors import IntegrityError, InvalidModel, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.blobs import BlobWriter, Written, blob_path, fsync_dir, sha256_file
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.locks import flocked, is_locked
from llmctl.oci.reference import Reference, parse

LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
LOCK_FILES = ("index.lock", "gc.lock")
MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # the registry client's bound too: larger is no manifest of ours


@dataclass(frozen=True)
class Entry:
    """One tag in the store."""

    reference: Reference
    descriptor: Descriptor


@dataclass(frozen=True)
class GcResult:
    removed: int
    bytes: int
    temp_files: int = 0


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.index_path = self.root / "index.json"

    # -- layout ------------------------------------------------------------------------------------
    def init(self) -> "Store":
        """Create the layout if missing. Idempotent and safe to race."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            self._atomic_write(layout, json.dumps(LAYOUT_VERSION).encode())
        if not self.index_path.exists():
            with flocked(self.ingest_dir / "index.lock"):
                if not self.index_path.exists():
                    self._write_index([])
        return self

    def _atomic_write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def _read_index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.index_path.read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        except ValueError as exc:
            raise IntegrityError(f"{self.index_path} is not valid JSON: {exc}") from None
        data.setdefault("manifests", [])
        return data

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
        self._atomic_write(self.index_path, json.dumps(index, indent=2).encode())

    # -- blobs -------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return blob_path(self.blobs_dir, digest)

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except (FileNotFoundError, NotFound):
            return False
        return size is None or st.st_size == size

    def writer(self, *, partial_name: str | None = None) -> BlobWriter:
        return BlobWriter(self.blobs_dir, self.ingest_dir, partial_name=partial_name)

    def partial_name(self, digest: str) -> str:
        return f"{digest.split(':', 1)[1]}.partial"

    def put_bytes(self, data: bytes, expected_digest: str | None = None) -> Written:
        with self.writer() as w:
            w.write(data)
            return w.commit(expected_digest, len(data) if expected_digest else None)

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store (run `llmctl verify`)") from None

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob as a seekable file, for reading a part of it (a tar member, a header) without all of it."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store (run `llmctl verify`)") from None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while writing blobs that a manifest will reference: keeps garbage collection out."""
        with flocked(self.ingest_dir / "gc.lock", shared=True):
            yield

    # -- manifests and tags ------------------------------------------------------------------------
    def put_manifest(self, manifest: Manifest, refs: list[Reference]) -> Descriptor:
        """Store a manifest and point the given tags at it. All its blobs must already be present."""
        for blob in manifest.blobs():
            if not self.has_blob(blob.digest, blob.size):
                raise IntegrityError(f"cannot tag {refs[0]}: blob {blob.digest} is not in the store")
        raw = manifest.to_bytes()
        written = self.put_bytes(raw)
        desc = Descriptor(manifest.media_type, written.digest, written.size, artifact_type=manifest.artifact_type)
        self.tag(desc, refs)
        return desc

    def put_raw_manifest(self, raw: bytes, media_type: str, refs: list[Reference]) -> Descriptor:
        """Store manifest bytes exactly as received (their digest is what the registry named)."""
        manifest = Manifest.from_bytes(raw)
        for blob in manifest.blobs():
            if not self.has_blob(blob.digest, blob.size):
                raise IntegrityError(f"cannot tag {refs[0] if refs else 'manifest'}: blob {blob.digest} missing")
        written = self.put_bytes(raw)
        desc = Descriptor(media_type, written.digest, written.size, artifact_type=manifest.artifact_type)
        if refs:
            self.tag(desc, refs)
        return desc

    def tag(self, desc: Descriptor, refs: list[Reference]) -> None:
        names = {str(r.with_tag(r.tag or "latest")) if r.digest else str(r) for r in refs}
        with flocked(self.ingest_dir / "index.lock"):
            index = self._read_index()
            kept = [m for m in index["manifests"] if _ref_name(m) not in names]
            for name in sorted(names):
                entry = desc.to_json()
                entry["annotations"] = {mt.ANNOTATION_REF_NAME: name, mt.ANNOTATION_CONTAINERD_NAME: name}
                kept.append(entry)
            self._write_index(kept)

    def untag(self, ref: Reference) -> Descriptor:
        return self.untag_many([ref])[0]

    def untag_many(self, refs: list[Reference]) -> list[Descriptor]:
        """Remove several tags in one rewrite of `index.json`: all of them, or none when one is missing."""
        names = [str(r) for r in refs]
        with flocked(self.ingest_dir / "index.lock"):
            index = self._read_index()
            by_name = {_ref_name(m): m for m in index["manifests"]}
            for ref, name in zip(refs, names):
                if name not in by_name:
                    raise NotFound(f"model {ref.short()!r} not found")
            gone = set(names)
            self._write_index([m for m in index["manifests"] if _ref_name(m) not in gone])
        return [Descriptor.from_json(by_name[n]) for n in names]

    def entries(self) -> list[Entry]:
        out = []
        for m in self._read_index()["manifests"]:
            name = _ref_name(m)
            if not name:
                continue
            try:
                ref = parse(name)
            except Exception:
                continue  # a tag written by another tool in a form we do not manage
            out.append(Entry(ref, Descriptor.from_json(m)))
        return out

    def roots(self) -> list[Descriptor]:
        """Every manifest `index.json` lists, names unparsed: what garbage collection must keep, including
        tags another tool wrote in a form `entries()` does not manage."""
        out = []
        for m in self._read_index()["manifests"]:
            try:
                out.append(Descriptor.from_json(m))
            except InvalidModel:
                continue
        return out

    def resolve(self, ref: Reference) -> Descriptor:
        """The manifest descriptor for a tag, or for a digest that the store holds.

        A tag is found by comparing reference text, without parsing every name in the index: one pass
        over `index.json`, whatever the number of models."""
        if ref.digest:
            for m in self._read_index()["manifests"]:
                if m.get("digest") == ref.digest and _ref_name(m):
                    return Descriptor.from_json(m)
            desc = self._unindexed_manifest(ref.digest)
            if desc is not None:
                return desc
            raise NotFound(f"model {ref.short()!r} not found")
        name = str(ref)
        for m in self._read_index()["manifests"]:
            if _ref_name(m) == name:
                return Descriptor.from_json(m)
        raise NotFound(f"model {ref.short()!r} not found", hint="`llmctl list` shows the stored models")

    def _unindexed_manifest(self, digest: str) -> Descriptor | None:
        """A stored blob named by digest that is a manifest, else None. Its size comes from `stat`: the
        digest a client sends may name a 4 GB GGUF, which must never be read to find that out."""
        try:
            size = self.blob_path(digest).stat().st_size
        except (FileNotFoundError, NotFound):
            return None
        if size > MAX_MANIFEST_SIZE:
            return None
        try:
            Manifest.from_bytes(self.read_blob(digest))
        except (InvalidModel, ValueError):
            return None
        return Descriptor(mt.OCI_MANIFEST, digest, size)

    def manifest(self, desc: Descriptor) -> Manifest:
        raw = self.read_blob(desc.digest)
        try:
            return Manifest.from_bytes(raw)
        except InvalidModel as exc:
            raise IntegrityError(f"manifest {desc.digest}: {exc}") from None

    def manifests(self, descriptors: Iterable[Descriptor]) -> dict[str, Manifest]:
        """digest -> manifest, each distinct digest read once (tags that share a manifest, as `tag` and
        `create` make, cost nothing more). Missing or broken manifests are left out: `verify` reports them."""
        out: dict[str, Manifest] = {}
        failed: set[str] = set()
        for desc in descriptors:
            if desc.digest in out or desc.digest in failed:
                continue
            try:
                out[desc.digest] = self.manifest(desc)
            except (NotFound, IntegrityError):
                failed.add(desc.digest)
        return out

    # -- space -------------------------------------------------------------------------------------
    def referenced(self) -> dict[str, int]:
        """digest -> number of distinct manifests referencing it (manifests count themselves)."""
        counts: dict[str, int] = {}
        roots = self.roots()
        for digest, manifest in self.manifests(roots).items():
            counts[digest] = counts.get(digest, 0) + 1
            for blob in {b.digest for b in manifest.blobs()}:
                counts[blob] = counts.get(blob, 0) + 1
        for root in roots:  # a manifest that does not parse still keeps its own blob
            counts.setdefault(root.digest, 1)
        return counts

    def blob_files(self) -> Iterator[tuple[str, Path]]:
        if not self.blobs_dir.exists():
            return
        for path in self.blobs_dir.iterdir():
            if len(path.name) == 64:
                yield "sha256:" + path.name, path

    def temp_files(self) -> Iterator[Path]:
        if not self.ingest_dir.exists():
            return
        for path in self.ingest_dir.iterdir():
            if path.name not in LOCK_FILES:
                yield path
        for path in self.root.glob(".*.tmp-*"):
            yield path

    def collect_garbage(self, *, wait: float | None = None, temp_files: bool = False) -> GcResult | None:
        """Remove blobs no manifest references (and, optionally, dead temp files).

        Returns None when a writer holds the store and `wait` ran out: nothing was removed.
        """
        with flocked(self.ingest_dir / "gc.lock", timeout=wait) as acquired:
            if not acquired:
                return None
            keep = self.referenced()
            removed = freed = 0
            for digest, path in list(self.blob_files()):
                if digest not in keep:
                    size = path.stat().st_size
                    path.unlink(missing_ok=True)
                    removed += 1
                    freed += size
            dead = 0
            if temp_files:
                for path in list(self.temp_files()):
                    if not is_locked(path):
                        freed += path.stat().st_size
                        path.unlink(missing_ok=True)
                        dead += 1
            return GcResult(removed, freed, dead)

    def verify(self) -> list[str]:
        """Re-hash every blob and check every tag's manifest; returns the problems found."""
        problems = []
        for digest, path in self.blob_files():
            actual = sha256_file(path)
            if actual != digest:
                problems.append(f"blob {digest} is corrupt (content hashes to {actual})")
        entries = self.entries()
        manifests = self.manifests(e.descriptor for e in entries)
        for entry in entries:
            name = entry.reference.short()
            if not self.has_blob(entry.descriptor.digest):
                problems.append(f"{name}: manifest {entry.descriptor.digest} is missing")
                continue
            manifest = manifests.get(entry.descriptor.digest)
            if manifest is None:
                try:
                    self.manifest(entry.descriptor)  # for its error message
                except IntegrityError as exc:
                    problems.append(f"{name}: {exc}")
                continue
            for blob in manifest.blobs():
                if not self.has_blob(blob.digest):
                    problems.append(f"{name}: blob {blob.digest} is missing")
                elif not self.has_blob(blob.digest, blob.size):
                    problems.append(f"{name}: blob {blob.digest} has the wrong size")
        return problems


def _ref_name(entry: dict[str, Any]) -> str | None:
    return (entry.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME)
