"""Artifacts: GGUF metadata, configs and manifests that match our schemas, and every variant we read."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from llmctl.artifact.gguf_meta import format_parameters, read_gguf
from llmctl.artifact.model import load
from llmctl.errors import InvalidModel
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.layout import Store
from llmctl.oci.reference import parse

SCHEMAS = Path(__file__).resolve().parent.parent / "oci" / "schemas"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def test_gguf_metadata_of_the_real_gemma(gemma_gguf: Path) -> None:
    info = read_gguf(gemma_gguf)
    assert info.architecture == "gemma3"
    assert info.quantization == "Q4_K_M"
    assert info.context_length == 32768
    assert info.parameter_count == 268_098_176
    assert info.parameter_label == "268.10 M"
    assert info.chat_template is None  # a base model
    strings = info.config_strings()
    assert strings["gemma3.block_count"] == "18"
    assert not any(k.startswith("tokenizer.ggml.tokens") for k in strings)
    # the tensor infos come with the header: shapes, types, and byte sizes that tile the data section
    assert len(info.tensors) == info.tensor_count and sum(t.elements for t in info.tensors) == info.parameter_count
    embd = next(t for t in info.tensors if t.name == "token_embd.weight")
    assert embd.shape == (640, 262144) and embd.type_name in {"Q4_K", "Q5_K", "Q6_K", "Q8_0"}
    last = max(info.tensors, key=lambda t: t.offset)
    assert info.data_offset % 32 == 0 and info.data_offset + last.offset + last.nbytes == gemma_gguf.stat().st_size


@pytest.mark.parametrize("count, label", [(268_098_176, "268.10 M"), (8_030_261_248, "8.03 B"), (999, "999")])
def test_parameter_labels(count: int, label: str) -> None:
    assert format_parameters(count) == label


def test_not_gguf_and_truncated_files_are_clear_errors(tmp_path: Path, gemma_gguf: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InvalidModel, match="not a GGUF file"):
        read_gguf(text)
    truncated = tmp_path / "cut.gguf"
    with open(gemma_gguf, "rb") as f:
        truncated.write_bytes(f.read(5000))
    with pytest.raises(InvalidModel, match="truncated"):
        read_gguf(truncated)


def test_packaged_model_matches_the_schemas(cli, home: Path, gemma_gguf: Path, tmp_path: Path) -> None:
    lic = tmp_path / "LICENSE"
    lic.write_text("Gemma Terms of Use\n")
    tmpl = tmp_path / "chat.jinja"
    tmpl.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    out = cli("package", "--gguf", str(gemma_gguf), "--license", str(lic), "--chat-template", str(tmpl),
              "--context-size", "8192", "team/gemma:q4", "-q")
    assert out.code == 0, out.stderr
    inspected = json.loads(cli("inspect", "team/gemma:q4").stdout)
    jsonschema.validate(inspected["manifest"], schema("manifest.schema.json"))
    jsonschema.validate(inspected["config"], schema("model-config.schema.json"))
    config = inspected["config"]
    layers = inspected["manifest"]["layers"]
    assert [d["mediaType"] for d in layers] == [mt.GGUF, mt.LICENSE, mt.CHAT_TEMPLATE]
    assert config["rootfs"]["diff_ids"] == [d["digest"] for d in layers]
    assert config["config"]["context_size"] == 8192
    assert config["config"]["size"] == str(gemma_gguf.stat().st_size)
    assert list(config["descriptor"]) == ["created"]  # no `createdAt`: DMR would read it as ModelPack
    shown = json.loads(cli("show", "team/gemma:q4", "--json").stdout)
    assert shown["chat_template"].startswith("{% for m")
    assert shown["license"] == ["Gemma Terms of Use\n"]


def _put(store: Store, data: bytes, media_type: str, annotations: dict | None = None) -> Descriptor:
    w = store.put_bytes(data)
    return Descriptor(media_type, w.digest, w.size, annotations or {})


def test_reads_ollama_artifacts(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    weights = _put(store, b"GGUF-weights", mt.OLLAMA_MODEL)
    layers = (
        weights,
        _put(store, b"{{ .Prompt }}", mt.OLLAMA_TEMPLATE),
        _put(store, b"You are terse.", mt.OLLAMA_SYSTEM),
        _put(store, b'{"stop": ["<end>"], "temperature": 0.2}', mt.OLLAMA_PARAMS),
        _put(store, b'[{"role": "user", "content": "hi"}]', mt.OLLAMA_MESSAGES),
        _put(store, b"MIT", mt.OLLAMA_LICENSE),
    )
    config = _put(store, b'{"model_format": "gguf", "model_family": "llama", "model_type": "8B", "file_type": "Q4_0"}',
                  mt.OLLAMA_CONFIG)
    store.put_manifest(Manifest(config, layers, mt.DOCKER_MANIFEST_V2), [parse("ollama/x")])
    model = load(store, parse("ollama/x"))
    assert model.weights == (store.blob_path(weights.digest),)
    assert (model.template, model.system, model.licenses) == ("{{ .Prompt }}", "You are terse.", ("MIT",))
    assert model.parameters == {"stop": ["<end>"], "temperature": 0.2}
    assert [(m.role, m.content) for m in model.messages] == [("user", "hi")]
    assert (model.facts.architecture, model.facts.parameters, model.facts.quantization) == ("llama", "8B", "Q4_0")


def test_reads_dmr_v02_and_cncf_modelpack(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    gguf = _put(store, b"GGUF-a", mt.DMR_MODEL_FILE, {mt.ANNOTATION_FILEPATH: "model/weights.gguf"})
    lic = _put(store, b"Apache", mt.DMR_MODEL_FILE, {mt.ANNOTATION_FILEPATH: "LICENSE"})
    cfg = _put(store, json.dumps({"config": {"format": "gguf", "architecture": "qwen3", "context_size": 4096},
                                  "descriptor": {"created": "2026-01-01T00:00:00Z"},
                                  "rootfs": {"type": "layers", "diff_ids": [gguf.digest, lic.digest]}}).encode(),
               mt.MODEL_CONFIG_V02)
    store.put_manifest(Manifest(cfg, (gguf, lic)), [parse("dmr/v2")])
    model = load(store, parse("dmr/v2"))
    assert model.weights == (store.blob_path(gguf.digest),)
    assert model.licenses == ("Apache",)
    assert model.created == "2026-01-01T00:00:00Z" and model.facts.context_size == 4096

    w = _put(store, b"GGUF-b", mt.CNCF_WEIGHT_GGUF)
    doc = _put(store, b"License text", mt.CNCF_DOC, {mt.ANNOTATION_FILEPATH: "LICENSE"})
    cfg = _put(store, json.dumps({"config": {"format": "gguf", "paramSize": "7B", "precision": "q4"}}).encode(),
               mt.CNCF_CONFIG)
    store.put_manifest(Manifest(cfg, (w, doc), artifact_type=mt.CNCF_MANIFEST), [parse("cncf/m")])
    model = load(store, parse("cncf/m"))
    assert model.weights == (store.blob_path(w.digest),)
    assert model.licenses == ("License text",)
    assert (model.facts.parameters, model.facts.quantization) == ("7B", "q4")


def test_a_manifest_without_weights_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path).init()
    cfg = _put(store, b"{}", mt.MODEL_CONFIG_V01)
    store.put_manifest(Manifest(cfg, (_put(store, b"x", mt.LICENSE),)), [parse("empty")])
    with pytest.raises(InvalidModel, match="no weights layer"):
        load(store, parse("empty"))
