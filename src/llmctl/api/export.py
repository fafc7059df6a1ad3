"""`export NAME DIR`: a stored model laid out as the folder an engine loads, every byte checked.

A safetensors model becomes the Hugging Face folder vLLM, SGLang and transformers load (`config.json`,
tokenizer files, the shards and their index); a GGUF model a folder with its .gguf (projector, adapters,
license and chat template beside it). `artifact/folder.py` decides what goes where; this module moves bytes:

- **Hard links** from the store when DIR is on the store's file system (no copy, no extra space; as Docker
  Model Runner's bundles do), copies otherwise (EXDEV, or a file system without links) or with `copy=True`.
  A linked file shares the store's bytes: editing it in place would corrupt the stored blob, which is why
  `--copy` exists.
- **Verified**: a copy is hashed while it is written, a link is hashed once made, an archive before it is
  unpacked; a mismatch is an IntegrityError and nothing is published.
- **Atomic**: everything is written into a temp folder beside DIR and renamed into place; on any failure the
  temp folder goes and DIR is as it was. A DIR that is not empty is refused unless `force`, which moves the
  model's files into it one rename at a time (same-named files replaced, others left alone).
- Garbage collection is held off (`store.writing()`) so `rm`/`prune` cannot take a blob mid-export.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.api.models import ensure_model, open_store, short
from llmctl.artifact.folder import FolderEntry, folder_entries, safe_relpath
from llmctl.errors import Conflict, IntegrityError, InvalidInput, InvalidModel, LlmctlError
from llmctl.oci.blobs import CHUNK, fsync_dir
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.progress import NullProgress, Progress
from llmctl.settings import Settings

NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class Exported:
    reference: Reference
    name: str
    directory: Path
    format: str
    files: tuple[str, ...]  # relative paths, in the order written
    total: int  # bytes of the folder
    linked: int  # bytes hard-linked from the store
    copied: int  # bytes copied or unpacked

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "reference": str(self.reference), "directory": str(self.directory),
                "format": self.format, "files": list(self.files), "total_bytes": self.total,
                "linked_bytes": self.linked, "copied_bytes": self.copied}


@dataclass
class _Tally:
    files: list[str] = field(default_factory=list)
    linked: int = 0
    copied: int = 0


@dataclass(frozen=True)
class PulledAndExported:
    """`pull NAME --export DIR`: what the pull moved, then what the export wrote."""

    pulled: Any  # api.pull.Pulled (imported where it is used: `export` alone never loads the registry client)
    exported: Exported

    def to_json(self) -> dict[str, Any]:
        return {**self.pulled.to_json(), "export": self.exported.to_json()}


def pull_and_export(settings: Settings, name: str, directory: Path, *, progress: Progress | None = None,
                    **pull_options: Any) -> PulledAndExported:
    """Pull `name` as `pull` does (the tag follows the registry), then export what was pulled to `directory`.

    DIR is checked before the pull, so one that would be refused costs no download. There is no `force`:
    `pull` is not the command to overwrite a folder with (`export NAME DIR --force` is).
    """
    from llmctl.api.pull import pull

    target = _target(directory)
    _check_target(target, False, hint=f"pull without --export, then `llmctl export {name} {directory} --force`")
    pulled = pull(settings, name, progress=progress, **pull_options)
    return PulledAndExported(pulled, export(settings, pulled.reference, target, progress=progress))


def export(settings: Settings, name: str | Reference, directory: Path, *, force: bool = False, copy: bool = False,
           progress: Progress | None = None) -> Exported:
    """Lay `name` out in `directory` (pulled first if it is not stored, as `run` does)."""
    progress = progress or NullProgress()
    target = _target(directory)
    _check_target(target, force)  # before a pull: a refused export changes nothing
    model = ensure_model(settings, name, progress)
    entries = folder_entries(model.manifest, model.format)
    store = open_store(settings)
    tally = _Tally()
    with store.writing():
        stage = _make_stage(target)
        try:
            for entry in entries:
                if entry.archive:
                    _unpack(store, entry, stage, tally, progress)
                else:
                    _place(store, entry, stage, tally, progress, copy=copy)
            _fsync_tree(stage)
            _publish(stage, target, force)
        except OSError as exc:
            raise _os_error(exc, target) from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return Exported(model.reference, short(settings, model.reference), target, model.format, tuple(tally.files),
                    tally.linked + tally.copied, tally.linked, tally.copied)


# -- the target ----------------------------------------------------------------------------------------
def _target(directory: Path) -> Path:
    return Path(directory).expanduser().absolute()


def _check_target(target: Path, force: bool, hint: str = "pass --force to write the model's files into it") -> None:
    if target.is_symlink():
        raise InvalidInput(f"{target} is a symbolic link; name the folder itself")
    if target.exists() and not target.is_dir():
        raise InvalidInput(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise Conflict(f"{target} is not empty", hint=hint)


def _make_stage(target: Path) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = target.parent / f".{target.name}.llmctl-export-{secrets.token_hex(4)}"
        stage.mkdir()
    except OSError as exc:
        raise _os_error(exc, target) from None
    return stage


def _publish(stage: Path, target: Path, force: bool) -> None:
    """Rename the finished folder into place; into a non-empty DIR (--force), one file at a time."""
    try:
        os.rename(stage, target)  # also replaces an empty folder, atomically
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        if not force:
            raise Conflict(f"{target} is not empty", hint="pass --force to write the model's files into it") from None
        _merge(stage, target)
    fsync_dir(target.parent)


def _merge(stage: Path, target: Path) -> None:
    moves = [(p, target / p.relative_to(stage)) for p in sorted(stage.rglob("*")) if not p.is_dir()]
    for _, dest in moves:  # every clash is found before anything moves
        if dest.is_dir() and not dest.is_symlink():
            raise Conflict(f"{dest} is a folder where the model has a file")
        for parent in dest.parents:
            if parent == target:
                break
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                raise Conflict(f"{parent} is in the way of the model's folder {parent.relative_to(target)}")
    for source, dest in moves:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
        fsync_dir(dest.parent)


# -- files ---------------------------------------------------------------------------------------------
def _place(store: Store, entry: FolderEntry, stage: Path, tally: _Tally, progress: Progress, *, copy: bool) -> None:
    blob = store.blob_path(entry.layer.digest)
    dest = stage / entry.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise InvalidModel(f"{entry.path} is in this model twice (a layer and a file of an archive)")
    key = f"export:{entry.path}"
    linked = False
    if not copy:
        try:
            os.link(blob, dest)
            linked = True
        except FileNotFoundError:
            raise IntegrityError(f"blob {entry.layer.digest} ({entry.path}) is missing from the store",
                                 hint="run `llmctl verify`, then pull the model again") from None
        except OSError as exc:
            if exc.errno not in NO_LINK:
                raise
    progress.start(key, f"{'verifying' if linked else 'copying'} {entry.path}", entry.layer.size)
    if linked:
        digest, size = _hash_file(dest, lambda n: progress.advance(key, n))
    else:
        digest, size = _copy_file(blob, dest, lambda n: progress.advance(key, n), entry)
    _check(entry, digest, size)
    progress.finish(key, "linked" if linked else "copied")
    tally.files.append(entry.path)
    if linked:
        tally.linked += size
    else:
        tally.copied += size


def _hash_file(path: Path, on_bytes: Any) -> tuple[str, int]:
    h, size, buf = hashlib.sha256(), 0, bytearray(CHUNK)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(memoryview(buf)[:n])
            size += n
            on_bytes(n)
    return "sha256:" + h.hexdigest(), size


def _copy_file(source: Path, dest: Path, on_bytes: Any, entry: FolderEntry) -> tuple[str, int]:
    h, size, buf = hashlib.sha256(), 0, bytearray(CHUNK)
    try:
        src = open(source, "rb")
    except FileNotFoundError:
        raise IntegrityError(f"blob {entry.layer.digest} ({entry.path}) is missing from the store",
                             hint="run `llmctl verify`, then pull the model again") from None
    with src, open(dest, "xb") as out:
        while n := src.readinto(buf):
            view = memoryview(buf)[:n]
            h.update(view)
            out.write(view)
            size += n
            on_bytes(n)
        out.flush()
        os.fsync(out.fileno())
    return "sha256:" + h.hexdigest(), size


def _check(entry: FolderEntry, digest: str, size: int) -> None:
    if digest != entry.layer.digest or size != entry.layer.size:
        raise IntegrityError(f"{entry.path}: the stored blob does not match its digest {entry.layer.digest}; "
                             "nothing was exported", hint="run `llmctl verify`, then pull the model again")


# -- archives ------------------------------------------------------------------------------------------
def _unpack(store: Store, entry: FolderEntry, stage: Path, tally: _Tally, progress: Progress) -> None:
    """Unpack a tar layer (DMR's config archive, a ModelPack tar layer): regular files and folders only."""
    blob = store.blob_path(entry.layer.digest)
    key = f"export:{entry.layer.digest}"
    progress.start(key, f"unpacking {entry.path}", entry.layer.size)
    try:
        digest, size = _hash_file(blob, lambda n: progress.advance(key, n))
    except FileNotFoundError:
        raise IntegrityError(f"blob {entry.layer.digest} ({entry.path}) is missing from the store",
                             hint="run `llmctl verify`, then pull the model again") from None
    _check(entry, digest, size)
    try:
        with tarfile.open(blob, mode="r:") as tar:
            for member in tar:
                _unpack_member(tar, member, entry, stage, tally)
    except tarfile.TarError as exc:
        raise InvalidModel(f"layer {entry.layer.digest} is not a usable tar archive: {exc}") from None
    progress.finish(key, "done")


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: FolderEntry, stage: Path,
                   tally: _Tally) -> None:
    name = member.name.removeprefix("./").rstrip("/")
    if member.isdir():
        if name:
            (stage / safe_relpath(name, f"archive {entry.layer.digest}")).mkdir(parents=True, exist_ok=True)
        return
    if not member.isreg() or member.issparse():
        return  # links, devices, fifos and sparse files have no place in a model folder (DMR skips them too)
    rel = safe_relpath(name, f"archive {entry.layer.digest}")
    dest = stage / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    assert source is not None
    try:
        out = open(dest, "xb")
    except FileExistsError:
        raise InvalidModel(f"{rel} is in this model twice (a layer and an archive, or two archives)") from None
    with source, out:
        while data := source.read(CHUNK):
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tally.files.append(rel)
    tally.copied += member.size


# -- durability and errors -----------------------------------------------------------------------------
def _fsync_tree(root: Path) -> None:
    for folder, _, _ in os.walk(root, topdown=False):
        fsync_dir(Path(folder))


def _os_error(exc: OSError, target: Path) -> LlmctlError:
    if exc.errno in DISK_FULL:
        return LlmctlError(f"disk full while exporting to {target}: {exc.strerror}; nothing was exported")
    where = f" ({exc.filename})" if exc.filename else ""
    return LlmctlError(f"cannot export to {target}: {exc.strerror or exc}{where}; nothing was exported")
