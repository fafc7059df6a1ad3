"""`pull hf.co/ORG/REPO` for a repository of safetensors weights (no GGUF): the model as
`llmctl package --safetensors-dir` would make it from a clone of the repository's top level.

The files go through huggingface_hub's cache like the GGUF path (`sources/hf.py`). Every file is checked
before it is stored: LFS files (the weights) against the sha256 the Hub lists, while they stream into the
store; small files (config.json, tokenizer files, the index) against their git blob id, before they go into
the config archive. A sharded model needs its `model.safetensors.index.json` and every shard it names;
files the index does not name and subfolders (`original/`, `onnx/`) are left out. The config's `created` is
the repository's last commit time, and the config archive is reproducible, so the same repository gives the
same model digest on every machine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

from llmctl.errors import IntegrityError, InvalidInput
from llmctl.oci import mediatypes as mt
from llmctl.oci.layout import Store
from llmctl.progress import Progress
from llmctl.sources.hf import HfName, HfPull, RemoteFile, _card_license, _created, _ingest


def git_blob_id(path: Path) -> str:
    """Git's object id of a file: sha1 of `blob <size>\\0` and the bytes (what the Hub lists as `oid`)."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_small(path: Path, remote: RemoteFile, repo_id: str) -> Path:
    """A non-LFS file as the Hub lists it (its git blob id); LFS files are verified while they are stored."""
    if remote.sha256 is None and remote.oid and git_blob_id(path) != remote.oid:
        raise IntegrityError(f"{remote.path} of hf.co/{repo_id} in the Hugging Face cache ({path}) does not match "
                             "the git blob id the Hub lists; nothing was stored",
                             hint="delete that file from the cache and pull again")
    return path


def store_safetensors(store: Store, hf: HfName, files: list[RemoteFile], info: Any,
                      download: Callable[[RemoteFile], Path], progress: Progress) -> HfPull:
    """Download, verify and store the repository's model under `hf.reference`."""
    from llmctl.artifact import safetensors_pack as sp
    from llmctl.artifact.ingest import commit_model, ingest_text

    where = f"hf.co/{hf.repo_id}"
    if hf.quant is not None:
        raise InvalidInput(f"{where} has no GGUF files, so there is no quantization {hf.quant!r} to choose",
                           hint=f"`llmctl pull {where}` brings its safetensors weights")
    top = {f.path: f for f in files if "/" not in f.path}
    folders = sorted({f.path.split("/", 1)[0] for f in files if "/" in f.path})

    def fetch(name: str) -> Path:
        return verify_small(download(top[name]), top[name], hf.repo_id)

    index = sp.read_index(fetch(sp.INDEX)) if sp.INDEX in top else None
    plan = sp.plan_folder(list(top), folders, index=index, where=where)
    paths = {name: fetch(name) for name in (*plan.configs, *plan.licenses, *plan.weights)}
    facts = sp.facts_for_folder([paths[w] for w in plan.weights], paths.get(sp.CONFIG))
    with store.writing():
        layers = [_ingest(store, paths[w], top[w], mt.DMR_SAFETENSORS, progress) for w in plan.weights]
        if plan.configs:
            layers.append(sp.ingest_config_archive(store, [(c, paths[c]) for c in plan.configs], progress))
        layers += [_ingest(store, paths[lic], top[lic], mt.LICENSE, progress) for lic in plan.licenses]
        if not plan.licenses and (text := _card_license(info, hf.repo_id)):
            layers.append(ingest_text(store, text, mt.LICENSE))
        committed = commit_model(store, [hf.reference], layers, facts, created=_created(info))
    return HfPull(reference=hf.reference, digest=committed.digest, blobs=len(layers) + 1,
                  total=sum(d.size for d in layers), downloaded=sum(top[n].size for n in paths))
