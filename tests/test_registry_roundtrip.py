"""Push and pull against the real docker-registry (distribution 2.8): round trips, skips, mounts, digests,
default registry, automatic pull, package --push, TLS. Weights are the real Gemma GGUF where size matters
and a tiny real GGUF where the test is about the protocol."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from fixtures_registry import RegistryServer
from llmctl.api.models import get_model, open_store
from llmctl.api.package import PackageSpec, package
from llmctl.api.pull import pull
from llmctl.api.push import push
from llmctl.api.manage import remove, tag
from llmctl.errors import NotFound, RegistryError
from llmctl.oci import mediatypes as mt
from llmctl.oci.registry.tls import TlsOptions, is_loopback
from llmctl.settings import Settings


def _home_settings(tmp_path: Path, name: str) -> Settings:
    return Settings.from_env({"LLMCTL_HOME": str(tmp_path / name), "DOCKER_CONFIG": str(tmp_path / "docker-config")})


def test_gemma_round_trip_is_byte_identical_and_repush_sends_nothing(
    registry: RegistryServer, settings: Settings, gemma_gguf: Path
) -> None:
    name = f"{registry.host}/team/gemma3:270m-q4"
    package(settings, name, PackageSpec(gguf=gemma_gguf))
    pushed = push(settings, name)
    assert pushed.uploaded == pushed.total > gemma_gguf.stat().st_size
    assert pushed.skipped == pushed.mounted == 0

    again = push(settings, name)
    assert again.uploaded == 0 and again.skipped == again.total  # HEAD says the registry has every blob
    assert again.digest == pushed.digest

    remove(settings, [name])
    with pytest.raises(NotFound):
        get_model(settings, name)
    pulled = pull(settings, name)
    assert pulled.digest == pushed.digest
    assert pulled.downloaded == pulled.total == pushed.total
    model = get_model(settings, name)
    assert filecmp.cmp(model.weights[0], gemma_gguf, shallow=False)
    assert not list((settings.store_dir / "ingest").glob("*.partial"))

    nothing = pull(settings, name)
    assert nothing.downloaded == 0 and nothing.skipped == nothing.total


def test_pull_by_digest_and_mount_across_repositories(registry: RegistryServer, settings: Settings,
                                                      small_gguf: Path, tmp_path: Path) -> None:
    a = f"{registry.host}/team/a:v1"
    package(settings, a, PackageSpec(gguf=small_gguf))
    pushed = push(settings, a)

    b = f"{registry.host}/other/b:v1"
    tag(settings, a, b)
    mounted = push(settings, b)
    assert mounted.uploaded == 0 and mounted.mounted == mounted.total  # cross-repository mount, no bytes

    other = _home_settings(tmp_path, "second-home")
    by_digest = pull(other, f"{registry.host}/other/b@{pushed.digest}")
    assert by_digest.digest == pushed.digest
    model = get_model(other, f"{registry.host}/other/b@{pushed.digest}")
    assert filecmp.cmp(model.weights[0], small_gguf, shallow=False)
    # a digest pull is kept under a tag naming the digest, so `rm` of another model cannot collect it
    names = [str(e.reference) for e in open_store(other).entries()]
    assert f"{registry.host}/other/b:sha256-{pushed.digest[7:19]}" in names


def test_not_found_and_unreachable(registry: RegistryServer, settings: Settings) -> None:
    with pytest.raises(NotFound, match="not found"):
        pull(settings, f"{registry.host}/team/nothing:here")
    with pytest.raises(NotFound, match="not found"):
        push(settings, f"{registry.host}/team/not-in-store:v1")
    registry.kill()
    from llmctl.oci.registry.client import RetryPolicy

    with pytest.raises(RegistryError, match="unreachable"):
        pull(settings, f"{registry.host}/team/nothing:here", retry=RetryPolicy(attempts=2, base=0.01))


def test_cli_package_push_default_registry_and_auto_pull(registry: RegistryServer, cli, small_gguf: Path,
                                                         tmp_path: Path) -> None:
    env = {"LLMCTL_REGISTRY": f"{registry.host}/team"}
    r = cli("package", "--gguf", str(small_gguf), "--push", "tiny:v1", env=env)
    assert r.code == 0, r.stderr
    assert "pushed tiny:v1" in r.stderr and "uploaded" in r.stderr
    # not a TTY here: plain progress lines, one per blob, for CI logs
    assert "pushing " in r.stderr and ": started" in r.stderr

    r = cli("push", "tiny:v1", "--json", env=env)
    data = json.loads(r.stdout)
    assert r.code == 0 and data["uploaded_bytes"] == 0 and data["reference"] == f"{registry.host}/team/tiny:v1"
    r = cli("push", "tiny:v1", "--quiet", env=env)
    assert r.code == 0 and r.stderr == "" and r.stdout == ""

    # a second machine: `create FROM` a model it does not have pulls it first, as `ollama run` does
    home2 = tmp_path / "home2"
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM tiny:v1\nSYSTEM You are terse.\n")
    r = cli("create", "terse", "-f", str(modelfile), env={**env, "LLMCTL_HOME": str(home2)})
    assert r.code == 0, r.stderr
    r = cli("list", "--json", env={**env, "LLMCTL_HOME": str(home2)})
    assert {m["name"] for m in json.loads(r.stdout)} == {"tiny:v1", "terse:latest"}

    r = cli("pull", "tiny:v2", env=env)
    assert r.code == 3 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_tls_verified_with_ca_cert_and_refused_without(registry_tls: RegistryServer, settings: Settings,
                                                       small_gguf: Path, cli) -> None:
    name = f"{registry_tls.host}/secure/tiny:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    with pytest.raises(RegistryError, match="not trusted"):
        push(settings, name)  # loopback, but HTTPS: still verified, never downgraded
    assert push(settings, name, ca_cert=registry_tls.ca_cert).uploaded > 0
    assert push(settings, name, insecure=True).uploaded == 0

    r = cli("pull", name, "--quiet")
    assert r.code == 6 and "not trusted" in r.stderr and "--ca-cert" in r.stderr
    r = cli("pull", name, "--quiet", env={"SSL_CERT_FILE": str(registry_tls.ca_cert)})
    assert r.code == 0, r.stderr
    r = cli("pull", name, "--quiet", env={"LLMCTL_CA_CERT": str(registry_tls.ca_cert)})
    assert r.code == 0, r.stderr


def test_loopback_and_insecure_rules() -> None:
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000") and not is_loopback("10.0.0.1")
    opts = TlsOptions(insecure_registries=("lab.example:5000",))
    assert opts.allows_http("localhost:5000") and not opts.skips_verification("localhost:5000")
    assert opts.allows_http("lab.example:5000") and opts.skips_verification("lab.example:5000")
    assert not opts.allows_http("registry.example.com")
    assert TlsOptions(insecure=True).ssl_context("x.example") is False


def test_manifest_media_types_on_the_registry(registry: RegistryServer, settings: Settings, small_gguf: Path) -> None:
    import httpx

    name = f"{registry.host}/team/tiny:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    pushed = push(settings, name)
    resp = httpx.get(f"{registry.url}/v2/team/tiny/manifests/v1", headers={"Accept": mt.OCI_MANIFEST})
    assert resp.headers["Docker-Content-Digest"] == pushed.digest
    data = resp.json()
    assert data["mediaType"] == mt.OCI_MANIFEST and data["config"]["mediaType"] == mt.MODEL_CONFIG_V01
    assert [layer["mediaType"] for layer in data["layers"]] == [mt.GGUF]


def test_large_blobs_go_in_chunks(registry: RegistryServer, fault_proxy, settings: Settings, small_gguf: Path,
                                  tmp_path: Path) -> None:
    """Above `chunk_size` a blob is sent as PATCH chunks (registries and proxies that cap request bodies)."""
    proxy = fault_proxy()  # no faults: it only counts what crosses it
    name = f"{proxy.host}/team/chunked:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    chunk = 16 * 1024
    pushed = push(settings, name, chunk_size=chunk)
    patches = [p for m, p, s in proxy.requests if m == "PATCH" and s == 202]
    assert len(patches) == -(-small_gguf.stat().st_size // chunk)
    fresh = _home_settings(tmp_path, "fresh")
    assert pull(fresh, name).digest == pushed.digest
    assert filecmp.cmp(get_model(fresh, name).weights[0], small_gguf, shallow=False)


def test_pull_through_an_oci_index(registry: RegistryServer, settings: Settings, small_gguf: Path,
                                   tmp_path: Path) -> None:
    """A tag that names an OCI index resolves to its image manifest (no platform, as model artifacts have)."""
    import hashlib

    import httpx

    name = f"{registry.host}/team/tiny:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    pushed = push(settings, name)
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": pushed.digest, "size": len(open_store(settings).read_blob(pushed.digest)),
         "artifactType": mt.MODEL_CONFIG_V01}]}).encode()
    resp = httpx.put(f"{registry.url}/v2/team/tiny/manifests/indexed", content=raw,
                     headers={"Content-Type": mt.OCI_INDEX})
    assert resp.status_code == 201, resp.text
    fresh = _home_settings(tmp_path, "fresh")
    pulled = pull(fresh, f"{registry.host}/team/tiny:indexed")
    assert pulled.digest == pushed.digest != "sha256:" + hashlib.sha256(raw).hexdigest()
    assert filecmp.cmp(get_model(fresh, f"{registry.host}/team/tiny:indexed").weights[0], small_gguf, shallow=False)
