"""Interop with the real skopeo: it reads what llmctl pushes, copies our store (an OCI layout) to the
registry, and what skopeo pushes pulls with llmctl byte for byte."""

from __future__ import annotations

import filecmp
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures_registry import RegistryServer
from llmctl.api.models import get_model
from llmctl.api.package import PackageSpec, package
from llmctl.api.pull import pull
from llmctl.api.push import push
from llmctl.oci import mediatypes as mt
from llmctl.settings import Settings


def skopeo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.fail("skopeo is not installed: run scripts/install-system-deps.sh")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=180, env=env)


def test_skopeo_reads_our_push_and_copies_it_into_an_oci_layout(registry: RegistryServer, settings: Settings,
                                                                 small_gguf: Path, tmp_path: Path) -> None:
    name = f"{registry.host}/team/tiny:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    pushed = push(settings, name)

    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{name}")
    assert raw.returncode == 0, raw.stderr
    manifest = json.loads(raw.stdout)
    assert hashlib.sha256(raw.stdout.encode()).hexdigest() == pushed.digest[7:]
    assert manifest["config"]["mediaType"] == mt.MODEL_CONFIG_V01
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.GGUF]

    layout = tmp_path / "layout"
    cp = skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:tiny")
    assert cp.returncode == 0, cp.stderr
    gguf_digest = manifest["layers"][0]["digest"]
    assert filecmp.cmp(layout / "blobs" / "sha256" / gguf_digest[7:], small_gguf, shallow=False)


def test_skopeo_copies_our_store_to_the_registry_and_llmctl_pulls_it(
    registry: RegistryServer, settings: Settings, gemma_gguf: Path, tmp_path: Path
) -> None:
    """Our store is an OCI layout whose ref.name annotations are full references: skopeo addresses a model
    as `oci:$LLMCTL_HOME/store:REGISTRY/REPO:TAG`."""
    local = "docker.io/library/gemma3:270m-q4"
    package(settings, "gemma3:270m-q4", PackageSpec(gguf=gemma_gguf))
    target = f"{registry.host}/by-skopeo/gemma3:270m"
    cp = skopeo("copy", "--dest-tls-verify=false", f"oci:{settings.store_dir}:{local}", f"docker://{target}")
    assert cp.returncode == 0, cp.stderr

    fresh = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "fresh-home")})
    pulled = pull(fresh, target)
    model = get_model(fresh, target)
    assert filecmp.cmp(model.weights[0], gemma_gguf, shallow=False)
    assert model.facts.architecture == "gemma3"
    assert pulled.downloaded == pulled.total

    # and the other way: llmctl pushes what skopeo wrote, the registry already has every blob
    again = push(fresh, target)
    assert again.uploaded == 0
