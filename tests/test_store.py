"""The local store is a standard OCI Image Layout that survives concurrency and kill -9."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmctl.errors import IntegrityError, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.layout import Store
from llmctl.oci.reference import parse


def _model(store: Store, payload: bytes) -> Manifest:
    blob = store.put_bytes(payload)
    config = store.put_bytes(b'{"config": {"format": "gguf"}}')
    return Manifest(
        config=Descriptor(mt.MODEL_CONFIG_V01, config.digest, config.size),
        layers=(Descriptor(mt.GGUF, blob.digest, blob.size),),
    )


def test_layout_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "s").init()
    assert json.loads((tmp_path / "s" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert (tmp_path / "s" / "blobs" / "sha256").is_dir()
    Store(tmp_path / "s").init()  # idempotent
    assert store.entries() == []


def test_tag_resolve_untag_and_gc(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    a, b = parse("a:1"), parse("b:1")
    desc = store.put_manifest(_model(store, b"weights"), [a, b])
    assert store.resolve(a) == desc == store.resolve(b)
    index = json.loads(store.index_path.read_text())
    names = sorted(m["annotations"][mt.ANNOTATION_REF_NAME] for m in index["manifests"])
    assert names == ["docker.io/library/a:1", "docker.io/library/b:1"]
    store.untag(a)
    assert store.collect_garbage().removed == 0  # b still references everything
    store.untag(b)
    result = store.collect_garbage()
    assert result.removed == 3  # manifest, config, layer
    assert list(store.blob_files()) == []
    with pytest.raises(NotFound):
        store.resolve(a)


def test_manifest_with_missing_blob_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    manifest = _model(store, b"w")
    store.blob_path(manifest.layers[0].digest).unlink()
    with pytest.raises(IntegrityError):
        store.put_manifest(manifest, [parse("x")])
    assert store.entries() == []


def test_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    with pytest.raises(IntegrityError):
        with store.writer() as w:
            w.write(b"hello")
            w.commit("sha256:" + "0" * 64, 5)
    assert list(store.blob_files()) == []
    assert list(store.temp_files()) == []


def _tag_many(root: str, worker: int) -> None:
    store = Store(Path(root)).init()
    for i in range(10):
        store.put_manifest(_model(store, f"{worker}-{i}".encode()), [parse(f"m{worker}:{i}")])


def test_concurrent_writers_lose_no_tags(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_tag_many, args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(tmp_path)
    assert len(store.entries()) == 40
    assert store.verify() == []


def test_gc_waits_for_writers(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    with store.writing():
        orphan = store.put_bytes(b"about to be referenced")
        assert store.collect_garbage(wait=0.2) is None  # a writer holds the store: nothing removed
        assert store.has_blob(orphan.digest)
    assert store.collect_garbage(wait=0.2).removed == 1


def test_verify_finds_corruption(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    manifest = _model(store, b"weights" * 1000)
    store.put_manifest(manifest, [parse("x")])
    path = store.blob_path(manifest.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = store.verify()
    assert len(problems) == 1 and "corrupt" in problems[0]


def test_resumable_writer_keeps_partial_bytes(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    payload = os.urandom(100_000)
    digest = "sha256:" + __import__("hashlib").sha256(payload).hexdigest()
    name = store.partial_name(digest)
    w = store.writer(partial_name=name)
    w.write(payload[:40_000])
    w.abort()  # interrupted: the partial file stays
    w = store.writer(partial_name=name)
    assert w.offset == 40_000
    w.write(payload[40_000:])
    assert w.commit(digest, len(payload)).digest == digest
    assert store.read_blob(digest) == payload


def test_killed_package_leaves_a_consistent_store(cli, home: Path, gemma_gguf: Path) -> None:
    """kill -9 `llmctl package` at several points: the store stays consistent, prune cleans up."""
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    for delay in (0.3, 0.8, 1.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmctl", "package", "--gguf", str(gemma_gguf), f"killed:{int(delay * 10)}", "-q"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check = cli("verify")
        assert check.code == 0, check.stderr
    listed = json.loads(cli("list", "--json").stdout)
    for model in listed:  # whatever made it is complete
        assert cli("show", model["name"], "--json").code == 0
    pruned = cli("prune", "--json")
    assert pruned.code == 0
    store = Store(home / "store")
    assert list(store.temp_files()) == []
    ok = cli("package", "--gguf", str(gemma_gguf), "after:kill", "-q")
    assert ok.code == 0, ok.stderr
    assert cli("verify").code == 0


def test_skopeo_reads_the_store(cli, home: Path, gemma_gguf: Path, tmp_path: Path) -> None:
    """Real skopeo (Debian) inspects and copies out of our store."""
    if not any((Path(d) / "skopeo").exists() for d in os.environ["PATH"].split(":")):
        pytest.fail("skopeo is not installed: run scripts/install-system-deps.sh")
    assert cli("package", "--gguf", str(gemma_gguf), "gemma-test:q4", "-q").code == 0
    ref = f"oci:{home / 'store'}:docker.io/library/gemma-test:q4"
    raw = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True, text=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    manifest = json.loads(raw.stdout)
    assert manifest["config"]["mediaType"] == mt.MODEL_CONFIG_V01
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.GGUF]
    out = tmp_path / "copy"
    copied = subprocess.run(["skopeo", "copy", ref, f"oci:{out}:copied"], capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    layer_digest = manifest["layers"][0]["digest"].split(":")[1]
    assert (out / "blobs" / "sha256" / layer_digest).stat().st_size == gemma_gguf.stat().st_size


def test_two_packages_at_once_share_one_weights_blob(home: Path, gemma_gguf: Path, cli) -> None:
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "llmctl", "package", "--gguf", str(gemma_gguf), f"twin:{i}", "-q"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    listed = {m["name"]: m for m in json.loads(cli("list", "--json").stdout)}
    assert set(listed) == {"twin:0", "twin:1"}
    store = Store(home / "store")
    big = [p for _, p in store.blob_files() if p.stat().st_size > 1_000_000]
    assert len(big) == 1
    assert cli("verify").code == 0
