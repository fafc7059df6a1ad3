"""Other writers' artifacts and configs: CNCF ModelPack (as modctl builds it) and Docker Model Runner v0.2
safetensors models, configs classified the way DMR's client does (`modelpack.IsModelPackConfig`), model-spec's
own example config, `pull hf.co/...` of a safetensors repository, and the bundled model's fixed digest."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from llmctl.api.export import export
from llmctl.api.models import get_model
from llmctl.api.pull import pull
from llmctl.artifact.build import ConfigFacts, build_config, facts_from_config, is_modelpack_config
from llmctl.errors import IntegrityError, InvalidInput, InvalidModel
from llmctl.oci import mediatypes as mt
from llmctl.oci.descriptor import Descriptor, Manifest
from llmctl.oci.layout import Store
from llmctl.oci.reference import parse
from llmctl.settings import Settings
from safetensors_model import load_folder, make_model, parameter_count

# The bundled gemma3:270m: one digest on every machine (fixed creation date, DMR-shaped config).
BUNDLED_DIGEST = "sha256:e10c20e125a1f00081417163a48ad0bb94325f80fe830b6144905decd6ce1ece"
T = "2025-08-14T00:00:00Z"
DIFF = "sha256:" + "ab" * 32

# What DMR's builder writes (pkg/distribution/builder: types.ConfigFile marshalled; rootfs type "rootfs").
DMR_BUILDER = {"config": {"format": "gguf", "quantization": "Q4_K_M", "parameters": "268.10 M", "architecture": "gemma3",
                          "size": "253113024", "gguf": {"general.architecture": "gemma3"}, "context_size": 32768},
               "descriptor": {"created": T}, "rootfs": {"type": "rootfs", "diff_ids": [DIFF]}}
# docker/model-spec config.md's example, as `oras push` with DMR media types gives it.
MODEL_SPEC_EXAMPLE = {"descriptor": {"createdAt": "2025-01-01T00:00:00Z"},
                      "config": {"format": "gguf", "format_version": "3",
                                 "gguf": {"architecture": "llama", "parameter_count": "1.10 B", "quantization": "Q4_0"},
                                 "size": "635992801"},
                      "files": [{"diffID": DIFF, "type": mt.GGUF}]}
# modctl's config (modelpack specs-go v1 Model marshalled: descriptor, modelfs, config).
MODCTL = {"descriptor": {"createdAt": T, "family": "llama", "name": "tiny-llama"},
          "modelfs": {"type": "layers", "diffIds": [DIFF]},
          "config": {"architecture": "transformer", "format": "safetensors", "paramSize": "1.4k", "precision": "float16"}}
# What llmctl wrote before it wrote DMR's rootfs type: the image spec's "layers".
LLMCTL_LAYERS_ROOTFS = {**DMR_BUILDER, "rootfs": {"type": "layers", "diff_ids": [DIFF]}}
# What llmctl wrote before DMR's shape: both spellings of the date, model-spec's files[] too.
PREVIOUS_LLMCTL = {"config": {"format": "gguf", "format_version": "3", "architecture": "gemma3", "parameters": "268.10 M",
                              "quantization": "Q4_K_M", "size": "253113024", "context_size": 32768,
                              "gguf": {"general.architecture": "gemma3", "gemma3.context_length": "32768"}},
                   "descriptor": {"createdAt": T, "created": T}, "files": [{"diffID": DIFF, "type": mt.GGUF}],
                   "rootfs": {"type": "layers", "diff_ids": [DIFF]}}


def test_configs_are_classified_as_docker_model_runner_does() -> None:
    cases = [(DMR_BUILDER, False), (LLMCTL_LAYERS_ROOTFS, False), (MODEL_SPEC_EXAMPLE, True), (MODCTL, True), (PREVIOUS_LLMCTL, True),
             ({"config": {"paramSize": "8b"}}, True), ({"modelfs": {}}, True), ({"descriptor": "createdAt"}, False),
             ({"config": ["paramSize"]}, False), ([], False)]
    for config, modelpack in cases:
        assert is_modelpack_config(json.dumps(config)) is modelpack, config
    assert is_modelpack_config(b"not json") is False
    layers = [Descriptor(mt.GGUF, DIFF, 10)]
    for facts in (ConfigFacts(format="gguf", architecture="llama", parameters="8.03 B", quantization="Q4_K_M",
                              context_size=8192, gguf={"general.architecture": "llama"}),
                  ConfigFacts(format="safetensors", parameters="1.30 K", safetensors={"tensor_count": "4"})):
        written = build_config(facts, layers, T)
        assert is_modelpack_config(written) is False  # DMR reads every field llmctl writes
        assert facts_from_config(json.loads(written)) == facts
    # the shape of DMR's builder, key for key and in its order (rootfs type "rootfs", not the image spec's "layers")
    written = json.loads(build_config(facts_from_config(DMR_BUILDER), [Descriptor(mt.GGUF, DIFF, 253113024)], T))
    assert written == DMR_BUILDER and list(written) == list(DMR_BUILDER)
    assert list(written["config"]) == list(DMR_BUILDER["config"])


def test_every_variant_reads_back_its_facts() -> None:
    def facts(config: dict) -> tuple:
        f = facts_from_config(config)
        return f.format, f.architecture, f.parameters, f.quantization, f.context_size

    assert facts(DMR_BUILDER) == ("gguf", "gemma3", "268.10 M", "Q4_K_M", 32768)
    assert facts(LLMCTL_LAYERS_ROOTFS) == facts(DMR_BUILDER)  # stores written before rootfs type "rootfs"
    assert facts(PREVIOUS_LLMCTL) == ("gguf", "gemma3", "268.10 M", "Q4_K_M", 32768)  # stores of the last version
    assert facts(MODEL_SPEC_EXAMPLE) == ("gguf", "llama", "1.10 B", "Q4_0", None)  # the context: from the header
    assert facts(MODCTL) == ("safetensors", "transformer", "1.4k", "float16", None)


def test_model_spec_example_config_falls_back_to_the_gguf_header(settings: Settings, small_gguf: Path) -> None:
    store = Store(settings.store_dir).init()
    weights = _put(store, small_gguf.read_bytes(), mt.GGUF)
    config = json.loads(json.dumps(MODEL_SPEC_EXAMPLE).replace(DIFF, weights.digest))
    store.put_manifest(Manifest(_put(store, json.dumps(config).encode(), mt.MODEL_CONFIG_V01), (weights,)),
                       [parse("spec/example")])
    previous = json.loads(json.dumps(PREVIOUS_LLMCTL).replace(DIFF, weights.digest))
    store.put_manifest(Manifest(_put(store, json.dumps(previous).encode(), mt.MODEL_CONFIG_V01), (weights,)),
                       [parse("llmctl/previous")])
    model = get_model(settings, "spec/example")
    f = model.facts
    assert (f.architecture, f.parameters, f.quantization, f.context_size) == ("llama", "1.10 B", "Q4_0", 256)
    assert model.created == "2025-01-01T00:00:00Z"
    old = get_model(settings, "llmctl/previous")
    assert (old.facts.architecture, old.facts.context_size, old.created) == ("gemma3", 32768, T)


def test_bundled_model_has_one_digest_everywhere(runtime_settings: Settings) -> None:
    assert get_model(runtime_settings, "gemma3:270m").digest == BUNDLED_DIGEST


# -- ModelPack and DMR v0.2 safetensors artifacts --------------------------------------------------------
def _put(store: Store, data: bytes, media_type: str, path: str | None = None) -> Descriptor:
    w = store.put_bytes(data)
    annotations = {mt.ANNOTATION_FILEPATH: path} if path else {}
    if path:
        meta = {"name": Path(path).name, "mode": 420, "uid": 0, "gid": 0, "size": len(data),
                "mtime": "2025-08-14T00:00:00Z", "typeflag": 0}
        annotations[mt.ANNOTATION_FILE_METADATA] = json.dumps(meta)
    return Descriptor(media_type, w.digest, w.size, annotations)


def _one_file_tar(path: str, data: bytes) -> bytes:
    """A modctl tar layer: the file at its path in the model folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    return folder, make_model(folder, shards=2)


def _modelpack(store: Store, folder: Path, *, tar: bool) -> Manifest:
    """A ModelPack artifact as `modctl build` makes it: `--raw` layers, or its default tar layers."""
    kinds = {".safetensors": (mt.CNCF_WEIGHT_RAW, mt.CNCF_WEIGHT_TAR), ".md": (mt.CNCF_DOC, mt.CNCF_DOC_TAR)}
    layers = []
    for file in sorted(folder.iterdir()):
        raw_type, tar_type = kinds.get(file.suffix, (mt.CNCF_WEIGHT_CONFIG, mt.CNCF_WEIGHT_CONFIG_TAR))
        if file.name == "LICENSE":
            raw_type, tar_type = mt.CNCF_DOC, mt.CNCF_DOC_TAR
        data = file.read_bytes()
        layers.append(_put(store, _one_file_tar(file.name, data), tar_type, file.name) if tar
                      else _put(store, data, raw_type, file.name))
    config = {"descriptor": {"createdAt": T, "family": "llama", "name": "tiny"},
              "modelfs": {"type": "layers", "diffIds": [d.digest for d in layers]},
              "config": {"architecture": "transformer", "format": "safetensors", "precision": "float16"}}
    cfg = _put(store, json.dumps(config).encode(), mt.CNCF_CONFIG)
    return Manifest(cfg, tuple(layers), artifact_type=mt.CNCF_MANIFEST)


def test_modelpack_safetensors_artifacts_read_and_export(model_folder, settings: Settings, tmp_path: Path, cli) -> None:
    folder, tensors = model_folder
    store = Store(settings.store_dir).init()
    store.put_manifest(_modelpack(store, folder, tar=False), [parse("cncf/tiny:raw")])
    store.put_manifest(_modelpack(store, folder, tar=True), [parse("cncf/tiny:tar")])

    raw = get_model(settings, "cncf/tiny:raw")
    assert raw.format == "safetensors" and len(raw.weights) == 2
    f = raw.facts  # precision from the config; parameters and context from the headers and config.json layer
    assert (f.architecture, f.quantization, f.context_size) == ("transformer", "float16", 2048)
    assert f.parameters == f"{parameter_count(tensors) / 1e3:.2f} K"
    assert raw.licenses == ("Apache License 2.0 (test model)\n",)
    tarred = get_model(settings, "cncf/tiny:tar")
    assert tarred.format == "safetensors" and tarred.weights == ()
    assert tarred.facts == f  # config.json and the headers read from inside modctl's tar layers, as `plan` reads them
    shown = json.loads(cli("show", "cncf/tiny:tar", "--json").stdout)
    assert (shown["parameters"], shown["context_length"]) == (f.parameters, 2048)
    with pytest.raises(InvalidModel, match="is safetensors: llama.cpp serves GGUF"):
        tarred.require_gguf("cncf/tiny:tar")

    for tag in ("raw", "tar"):
        out = tmp_path / tag
        export(settings, f"cncf/tiny:{tag}", out)
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folder.iterdir())
        loaded, config, _ = load_folder(out)
        assert loaded.keys() == tensors.keys() and config.num_hidden_layers == 1


def test_modelpack_artifacts_pushed_by_oras_pull_export_and_plan(model_folder, registry, settings: Settings,
                                                                 tmp_path: Path) -> None:
    """ModelPack artifacts written by another tool: oras-py pushes modctl's layouts (`--raw` files, and its default
    one-file tars) with ModelPack media types and path annotations to the real docker-registry. `plan` reads them
    there (manifest and config layers only), `pull` stores them, `export` gives the folder engines load."""
    import oras.client

    from llmctl.api.plan import resolve_model

    folder, tensors = model_folder
    client = oras.client.OrasClient(insecure=True)
    kinds = {".safetensors": (mt.CNCF_WEIGHT_RAW, mt.CNCF_WEIGHT_TAR), ".md": (mt.CNCF_DOC, mt.CNCF_DOC_TAR)}
    for tag, tar in (("raw", False), ("tar", True)):
        stage = tmp_path / tag
        stage.mkdir()
        files, annotations, diff_ids = [], {}, []
        for file in sorted(folder.iterdir()):
            raw_type, tar_type = kinds.get(file.suffix, (mt.CNCF_WEIGHT_CONFIG, mt.CNCF_WEIGHT_CONFIG_TAR))
            if file.name == "LICENSE":
                raw_type, tar_type = mt.CNCF_DOC, mt.CNCF_DOC_TAR
            blob = stage / file.name
            blob.write_bytes(_one_file_tar(file.name, file.read_bytes()) if tar else file.read_bytes())
            files.append(f"{blob}:{tar_type if tar else raw_type}")
            annotations[str(blob)] = {mt.ANNOTATION_FILEPATH: file.name}
            diff_ids.append("sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest())
        config = tmp_path / f"{tag}-model-config.json"
        config.write_text(json.dumps({"descriptor": {"createdAt": T, "name": "tiny"},
                                      "modelfs": {"type": "layers", "diffIds": diff_ids},
                                      "config": {"architecture": "transformer", "format": "safetensors"}}))
        (tmp_path / f"{tag}-annotations.json").write_text(json.dumps(annotations))
        name = f"{registry.host}/cncf/tiny:{tag}"
        client.push(target=name, files=files, manifest_config=f"{config}:{mt.CNCF_CONFIG}",
                    annotation_file=str(tmp_path / f"{tag}-annotations.json"), disable_path_validation=True, quiet=True)

        resolved = resolve_model(settings, name)  # from the registry: nothing stored
        assert resolved.profile.num_layers == 1 and resolved.profile.hidden_size == 16
        assert resolved.weights is not None and resolved.weights.kind == "oci" and "@sha256:" in resolved.weights.ref
        # what an image volume's link step unpacks (and its folder must hold): every tar layer, weights included
        assert resolved.weights.unpacked_bytes == (sum(f.stat().st_size for f in stage.iterdir()) if tar else 0)
        assert all(e.reference.tag != tag for e in Store(settings.store_dir).init().entries())
        pull(settings, name)
        assert get_model(settings, name).format == "safetensors"
        out = tmp_path / f"{tag}-out"
        export(settings, name, out)
        loaded, hf_config, _ = load_folder(out)
        assert loaded.keys() == tensors.keys() and hf_config.num_hidden_layers == 1
        assert resolve_model(settings, name).weights == resolved.weights  # stored now: the same pinned source


def test_dmr_v02_safetensors_models_keep_their_nested_paths(model_folder, settings: Settings, tmp_path: Path) -> None:
    """DMR's FromDirectory (config v0.2): one layer per file, the path in `org.cncf.model.filepath`."""
    folder, _ = model_folder
    store = Store(settings.store_dir).init()
    layers = []
    for file in sorted(folder.iterdir()):
        media_type = {".safetensors": mt.DMR_SAFETENSORS, ".jinja": mt.CHAT_TEMPLATE}.get(file.suffix, mt.DMR_MODEL_FILE)
        layers.append(_put(store, file.read_bytes(), mt.LICENSE if file.name == "LICENSE" else media_type, file.name))
    layers.append(_put(store, b'{"model_type": "t5"}', mt.DMR_MODEL_FILE, "text_encoder/config.json"))
    config = {"config": {"format": "safetensors", "quantization": "F16", "parameters": "1.43K", "size": "8560"},
              "descriptor": {"created": T}, "rootfs": {"type": "rootfs", "diff_ids": [d.digest for d in layers]}}
    store.put_manifest(Manifest(_put(store, json.dumps(config).encode(), mt.MODEL_CONFIG_V02), tuple(layers)),
                       [parse("dmr/tiny:v2")])
    model = get_model(settings, "dmr/tiny:v2")
    assert (model.format, model.facts.parameters, model.facts.context_size) == ("safetensors", "1.43K", 2048)
    out = tmp_path / "v2"
    exported = export(settings, "dmr/tiny:v2", out)
    assert (out / "text_encoder" / "config.json").read_text() == '{"model_type": "t5"}'
    assert (out / "chat_template.jinja").read_bytes() == (folder / "chat_template.jinja").read_bytes()
    assert exported.copied == 0  # every file a hard link into the store


# -- Hugging Face ---------------------------------------------------------------------------------------
def test_pull_a_sharded_safetensors_repo_from_hugging_face(model_folder, tmp_path: Path) -> None:
    from test_hf_pull import HfRepo, StandInHub
    folder, tensors = model_folder
    extra = tmp_path / "extra.safetensors"
    extra.write_bytes(b"consolidated weights the index does not name")
    hub = StandInHub().start()
    try:
        files = {p.name: p for p in folder.iterdir()} | {"original/consolidated.safetensors": extra}
        hub.repos["org/Tiny-Llama"] = HfRepo(files, card={"license": "apache-2.0"})

        def settings(home: str) -> Settings:
            return Settings.from_env({"LLMCTL_HOME": str(tmp_path / home), "HF_ENDPOINT": hub.endpoint,
                                      "HF_HOME": str(tmp_path / "hf-home")})

        first = pull(settings("home"), "hf.co/org/Tiny-Llama")
        model = get_model(settings("home"), "hf.co/org/tiny-llama")
        assert str(first.reference) == "hf.co/org/tiny-llama:latest" and model.format == "safetensors"
        assert [d.media_type for d in model.manifest.layers] == [mt.DMR_SAFETENSORS, mt.DMR_SAFETENSORS,
                                                                 mt.DMR_CONFIG_ARCHIVE, mt.LICENSE]
        assert hub.downloads("consolidated.safetensors") == 0  # subfolders are not part of the model
        assert pull(settings("home2"), "hf.co/org/Tiny-Llama").digest == first.digest  # same repo, same digest
        out = tmp_path / "out"
        export(settings("home"), "hf.co/org/tiny-llama", out)
        loaded, config, tokenizer = load_folder(out)
        assert loaded.keys() == tensors.keys() and config.vocab_size == 32

        with pytest.raises(InvalidInput, match="no GGUF files"):
            pull(settings("home"), "hf.co/org/Tiny-Llama:Q4_K_M")
        listed = hub.entry

        def lying_entry(path: str, file: Path) -> dict:  # the Hub lists another tokenizer.json than it serves
            out = listed(path, file)
            return {**out, "oid": hashlib.sha1(b"other").hexdigest()} if path == "tokenizer.json" else out

        hub.entry = lying_entry  # type: ignore[method-assign]
        with pytest.raises(IntegrityError, match="tokenizer.json .* does not match the git blob id"):
            pull(settings("home3"), "hf.co/org/Tiny-Llama")
        assert Store(tmp_path / "home3" / "store").init().entries() == []
    finally:
        hub.stop()
