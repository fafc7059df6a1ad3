"""Ollama-format artifacts (Docker v2 manifests whose layers are `application/vnd.ollama.image.*`), as
Ollama's registry serves them, pulled from the real docker-registry like our own models.

The artifact is uploaded with plain HTTP calls (what `ollama push` sends), independently of llmctl's client.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
from pathlib import Path

import httpx

from fixtures_registry import RegistryServer
from llmctl.api.models import get_model
from llmctl.api.pull import pull
from llmctl.api.push import push
from llmctl.oci import mediatypes as mt
from llmctl.settings import Settings

TEMPLATE = "{{ if .System }}<start_of_turn>system\n{{ .System }}<end_of_turn>\n{{ end }}{{ .Prompt }}"
SYSTEM = "You are a pirate. Answer in one sentence."
PARAMS = {"stop": ["<end_of_turn>", "<eos>"], "temperature": 0.5, "num_ctx": 2048}


def upload_ollama_model(registry: RegistryServer, repository: str, tag: str, gguf: Path) -> str:
    """Upload blobs and a Docker v2 manifest the way Ollama's registry holds them; returns the digest."""
    base = registry.url

    def put_blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        loc = httpx.post(f"{base}/v2/{repository}/blobs/uploads/").headers["Location"]
        url = httpx.URL(base).join(loc).copy_merge_params({"digest": digest})
        assert httpx.put(url, content=data, headers={"Content-Type": "application/octet-stream"}).status_code == 201
        return {"digest": digest, "size": len(data)}

    layers = [
        {"mediaType": mt.OLLAMA_MODEL, **put_blob(gguf.read_bytes())},
        {"mediaType": mt.OLLAMA_TEMPLATE, **put_blob(TEMPLATE.encode())},
        {"mediaType": mt.OLLAMA_SYSTEM, **put_blob(SYSTEM.encode())},
        {"mediaType": mt.OLLAMA_PARAMS, **put_blob(json.dumps(PARAMS).encode())},
        {"mediaType": mt.OLLAMA_LICENSE, **put_blob(b"MIT License (test copy)\n")},
    ]
    config = {"model_format": "gguf", "model_family": "llama", "model_families": ["llama"], "model_type": "16K",
              "file_type": "Q8_0", "architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_V2,
                "config": {"mediaType": mt.OLLAMA_CONFIG, **put_blob(json.dumps(config).encode())},
                "layers": layers}
    raw = json.dumps(manifest).encode()
    resp = httpx.put(f"{base}/v2/{repository}/manifests/{tag}", content=raw,
                     headers={"Content-Type": mt.DOCKER_MANIFEST_V2})
    assert resp.status_code == 201, resp.text
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_ollama_artifact_pulls_and_reads_like_our_own(registry: RegistryServer, settings: Settings,
                                                       small_gguf: Path, cli) -> None:
    digest = upload_ollama_model(registry, "library/pirate", "latest", small_gguf)
    name = f"{registry.host}/library/pirate"
    pulled = pull(settings, name)
    assert pulled.digest == digest  # the manifest is stored byte for byte

    model = get_model(settings, name)
    assert filecmp.cmp(model.weights[0], small_gguf, shallow=False)
    assert (model.template, model.system, model.parameters) == (TEMPLATE, SYSTEM, PARAMS)
    assert model.licenses == ("MIT License (test copy)\n",)
    assert model.facts.architecture == "llama" and model.facts.quantization == "Q8_0"

    r = cli("show", name, "--modelfile")
    assert r.code == 0, r.stderr
    text = r.stdout
    assert f"FROM {model.weights[0]}" in text
    assert "TEMPLATE" in text and "<start_of_turn>system" in text
    assert f'SYSTEM {SYSTEM}' in text or f'SYSTEM """{SYSTEM}"""' in text
    assert "PARAMETER temperature 0.5" in text and "PARAMETER num_ctx 2048" in text
    assert 'PARAMETER stop "<end_of_turn>"' in text or "PARAMETER stop <end_of_turn>" in text
    assert "LICENSE" in text

    # a Modelfile reconstructed from an Ollama artifact re-creates the same model parts
    modelfile = Path(settings.home) / "Modelfile"
    modelfile.write_text(text)
    r = cli("create", "pirate-copy", "-f", str(modelfile))
    assert r.code == 0, r.stderr
    copy = get_model(settings, "pirate-copy")
    assert (copy.template, copy.system, copy.parameters) == (TEMPLATE, SYSTEM, PARAMS)
    assert copy.weights[0] == model.weights[0]  # same blob, content-addressed


def test_ollama_artifact_pushes_back_unchanged(registry: RegistryServer, settings: Settings, small_gguf: Path) -> None:
    digest = upload_ollama_model(registry, "library/pirate", "v1", small_gguf)
    pull(settings, f"{registry.host}/library/pirate:v1")
    from llmctl.api.manage import tag

    tag(settings, f"{registry.host}/library/pirate:v1", f"{registry.host}/mirror/pirate:v1")
    pushed = push(settings, f"{registry.host}/mirror/pirate:v1")
    assert pushed.digest == digest and pushed.uploaded == 0 and pushed.mounted == pushed.total
    resp = httpx.get(f"{registry.url}/v2/mirror/pirate/manifests/v1", headers={"Accept": mt.DOCKER_MANIFEST_V2})
    assert resp.headers["Content-Type"] == mt.DOCKER_MANIFEST_V2
    assert [layer["mediaType"] for layer in resp.json()["layers"]][:2] == [mt.OLLAMA_MODEL, mt.OLLAMA_TEMPLATE]
