"""Safetensors models: packaging a Hugging Face folder as Docker Model Runner does, the registry round trip
(real docker-registry, skopeo, oras-py), `export` to a folder that `safetensors` and transformers load offline,
ModelPack and DMR v0.2 safetensors artifacts, and `run`/`serve` refusing them in one clear line.

The model is written in the test by `safetensors_model.make_model` with the real libraries (safetensors,
transformers' config and tokenizer classes); transformers is used without torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from fixtures_registry import RegistryServer
from llmctl.api.export import export
from llmctl.api.models import get_model
from llmctl.api.package import PackageSpec, package
from llmctl.api.pull import pull
from llmctl.api.push import push
from llmctl.artifact.build import is_modelpack_config
from llmctl.artifact.safetensors_meta import read_safetensors, safetensors_facts
from llmctl.artifact.safetensors_pack import plan_folder
from llmctl.errors import IntegrityError, InvalidModel, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.settings import Settings
from safetensors_model import load_folder, make_model, parameter_count

SCHEMAS = Path(__file__).resolve().parent.parent / "oci" / "schemas"


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A sharded model folder plus files that are not part of it (a .bin, README, a subfolder)."""
    folder = tmp_path_factory.mktemp("hf") / "Tiny-Llama"
    tensors = make_model(folder, shards=2)
    (folder / "README.md").write_text("# Tiny Llama\n")
    (folder / "pytorch_model.bin").write_bytes(b"not packaged")
    (folder / "original").mkdir()
    (folder / "original" / "consolidated.safetensors").write_bytes(b"not packaged either")
    return folder, tensors


# -- headers and facts ---------------------------------------------------------------------------------
def test_headers_are_read_as_the_safetensors_library_reads_them(hf_folder, tmp_path: Path) -> None:
    from safetensors import safe_open

    folder, tensors = hf_folder
    shard = folder / "model-00001-of-00002.safetensors"
    info = read_safetensors(shard)
    with safe_open(str(shard), framework="np") as f:
        assert {t.name for t in info.tensors} == set(f.keys())
        assert all(tuple(f.get_slice(t.name).get_shape()) == t.shape for t in info.tensors)
    assert info.metadata == {"format": "pt"}
    infos = [info, read_safetensors(folder / "model-00002-of-00002.safetensors")]
    facts = safetensors_facts(infos, json.loads((folder / "config.json").read_text()))
    assert facts.parameter_count == parameter_count(tensors)  # every shard, not only the first (as DMR counts)
    assert (facts.architecture, facts.context_size, facts.quantization) == ("LlamaForCausalLM", 2048, "F16")
    assert facts.strings == {"format": "pt", "tensor_count": str(len(tensors))}
    # quantization_config wins over the dtypes; a multimodal config keeps its context in text_config
    quantized = safetensors_facts(infos, {"model_type": "qwen3", "quantization_config": {"quant_method": "awq", "bits": 4},
                                          "text_config": {"max_position_embeddings": 40960}})
    assert (quantized.architecture, quantized.quantization, quantized.context_size) == ("qwen3", "awq-int4", 40960)

    for bad, why in ((b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]", "not a JSON object"),
                     ((10**9).to_bytes(8, "little") + b"{}", "header length"),
                     (b"abc", "shorter than")):
        (tmp_path / "bad.safetensors").write_bytes(bad)
        with pytest.raises(InvalidModel, match=why):
            read_safetensors(tmp_path / "bad.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(InvalidModel, match="truncated"):
        read_safetensors(tmp_path / "cut.safetensors")


def test_which_files_of_a_folder_make_the_model() -> None:
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "consolidated.safetensors",
             "model.safetensors.index.json", "config.json", "tokenizer.json", "tokenizer.model", "merges.txt",
             "chat_template.jinja", "LICENSE.md", "pytorch_model.bin", ".gitattributes"]
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    plan = plan_folder(files, ["original"], index=index)
    assert plan.weights == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert plan.configs == ("chat_template.jinja", "config.json", "merges.txt", "model.safetensors.index.json",
                            "tokenizer.json", "tokenizer.model")
    assert plan.licenses == ("LICENSE.md",)
    assert plan.skipped == ("consolidated.safetensors", "original/", "pytorch_model.bin")  # not in the index
    with pytest.raises(NotFound, match="names model-00002-of-00002.safetensors"):
        plan_folder(files[:1], index=index)
    with pytest.raises(NotFound, match="missing model-00002-of-00003.safetensors"):
        plan_folder(["model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors"])
    with pytest.raises(NotFound, match="no .safetensors"):
        plan_folder(["config.json"])


# -- the round trip ------------------------------------------------------------------------------------
def test_package_push_pull_export_and_load(hf_folder, registry: RegistryServer, cli, home: Path, tmp_path: Path) -> None:
    folder, tensors = hf_folder
    name = f"{registry.host}/team/tiny-llama:f16"
    r = cli("package", "--safetensors-dir", str(folder), name)
    assert r.code == 0, r.stderr
    assert "left out: original/, pytorch_model.bin" in r.stderr  # said, not silently dropped

    inspected = json.loads(cli("inspect", name).stdout)
    manifest, config = inspected["manifest"], inspected["config"]
    jsonschema.validate(manifest, json.loads((SCHEMAS / "manifest.schema.json").read_text()))
    jsonschema.validate(config, json.loads((SCHEMAS / "model-config.schema.json").read_text()))
    assert [d["mediaType"] for d in manifest["layers"]] == [mt.DMR_SAFETENSORS, mt.DMR_SAFETENSORS,
                                                            mt.DMR_CONFIG_ARCHIVE, mt.LICENSE]
    assert config["config"] == {
        "format": "safetensors", "quantization": "F16", "parameters": f"{parameter_count(tensors) / 1e3:.2f} K",
        "architecture": "LlamaForCausalLM", "size": str(sum(d["size"] for d in manifest["layers"][:2])),
        "safetensors": {"format": "pt", "tensor_count": str(len(tensors))}, "context_size": 2048}
    assert not is_modelpack_config(json.dumps(config))
    shown = json.loads(cli("show", name, "--json").stdout)
    assert (shown["format"], shown["context_length"]) == ("safetensors", 2048)
    again = cli("package", "--safetensors-dir", str(folder), "--quiet", "team/same:f16")
    assert again.code == 0  # the same folder gives the same layers (the config archive is reproducible)
    assert json.loads(cli("inspect", "team/same:f16").stdout)["manifest"]["layers"] == manifest["layers"]

    pushed = push(Settings.from_env(), name)
    raw = _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{name}")
    assert json.loads(raw)["layers"] == manifest["layers"]
    layout = tmp_path / "layout"
    _skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:m")  # skopeo checks every digest
    import oras.client

    pulled_by_oras = tmp_path / "oras"
    files = oras.client.OrasClient(insecure=True).pull(target=name, outdir=str(pulled_by_oras))
    assert {Path(f).name for f in files} >= {"model-00001-of-00002.safetensors", "config.tar", "LICENSE"}
    assert (pulled_by_oras / "model-00002-of-00002.safetensors").read_bytes() == \
        (folder / "model-00002-of-00002.safetensors").read_bytes()

    fresh = Settings.from_env({**os.environ, "LLMCTL_HOME": str(tmp_path / "fresh")})
    result = pull(fresh, name)
    assert result.digest == pushed.digest and result.downloaded == result.total
    out = tmp_path / "exported"
    done = export(fresh, name, out)
    assert done.copied > 0 and done.linked > 0  # weights linked, the config archive unpacked
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
         "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
         "README.md", "LICENSE"])
    store_blob = fresh.store_dir / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    assert (out / "model-00001-of-00002.safetensors").stat().st_ino == store_blob.stat().st_ino  # a hard link

    loaded, hf_config, tokenizer = load_folder(out)
    assert loaded.keys() == tensors.keys() and all(np.array_equal(loaded[k], tensors[k]) for k in tensors)
    assert hf_config.model_type == "llama" and hf_config.max_position_embeddings == 2048
    assert tokenizer("hello world")["input_ids"] == [3, 4]


def _skopeo(*args: str) -> str:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.fail("skopeo is not installed: run scripts/install-system-deps.sh")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_refusals_are_one_line_with_their_exit_codes(hf_folder, cli, tmp_path: Path) -> None:
    folder, _ = hf_folder
    both = cli("package", "--gguf", str(tmp_path / "x.gguf"), "--safetensors-dir", str(folder), "m")
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"\x00" * 64)
    cases = [(both, 2, "either --gguf or --safetensors-dir"),
             (cli("package", "--safetensors-dir", str(tmp_path / "nope"), "m"), 3, "no such folder"),
             (cli("package", "--safetensors-dir", str(empty), "m"), 3, "no .safetensors files"),
             (cli("package", "--safetensors-dir", str(junk), "m"), 4, "not a safetensors file"),
             (cli("export", "nosuch:model", str(tmp_path / "out")), 3, "not found")]
    from_folder = tmp_path / "Modelfile"
    from_folder.write_text(f"FROM {folder}\nSYSTEM hi\n")
    from_empty = tmp_path / "Empty.Modelfile"
    from_empty.write_text(f"FROM {empty}\n")
    cases += [(cli("create", "team/m", "-f", str(from_folder)), 4,
               f"{from_folder}:1: {folder}: no .gguf files in this folder; it holds safetensors weights: store them "
               f"with `llmctl package --safetensors-dir {folder} team/m`"),
              (cli("create", "m", "-f", str(from_empty)), 4, f"{empty}: no .gguf files in this folder\n")]
    for result, code, message in cases:
        assert result.code == code and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


ST = "team/st:f16"
REFUSAL = (f"model {ST} is safetensors: llama.cpp serves GGUF; plan it for vLLM/SGLang (`llmctl plan {ST}`) or "
           f"export its folder (`llmctl export {ST} DIR`), or pull a GGUF build of it")


@pytest.fixture(scope="module")
def st_gateway(hf_folder, tmp_path_factory: pytest.TempPathFactory):
    """One gateway for the module, over a home whose store holds the test folder packaged as `team/st:f16`."""
    from fixtures_gateway import start_gateway

    home = tmp_path_factory.mktemp("st-gateway") / "home"
    package(Settings.from_env({"LLMCTL_HOME": str(home)}), ST, PackageSpec(safetensors_dir=hf_folder[0]))
    gw = start_gateway(home)
    try:
        yield gw
    finally:
        assert gw.stop() == 0, gw.stderr()[-2000:]


def test_run_refuses_safetensors_in_one_line_and_serve_still_shows_them(st_gateway, cli) -> None:
    r = cli("run", ST, "hi", env={"LLMCTL_HOME": str(st_gateway.home), "LLMCTL_HOST": "127.0.0.1:9"})
    assert r.code == 4, r.stderr
    assert r.stderr == f"llmctl: error: {REFUSAL}\n"
    planned = cli("plan", ST, "--isl", "1024", "--format", "lws", env={"LLMCTL_HOME": str(st_gateway.home)})
    assert planned.code == 0 and "llmctl export" in planned.stdout, planned.stderr  # the advice works as given
    assert st_gateway.http.post("/api/show", json={"model": ST}).status_code == 200
    assert st_gateway.http.get(f"/v1/models/{ST}").status_code == 200


def test_show_modelfile_of_safetensors_names_the_model_and_re_creates_it(hf_folder, st_gateway, cli, home: Path,
                                                                          tmp_path: Path) -> None:
    from test_cli_fast import same_through_both_doors

    assert cli("package", "--safetensors-dir", str(hf_folder[0]), "-q", ST).code == 0
    text = same_through_both_doors(home, "show", ST, "--modelfile").decode()
    assert text == (
        '# Modelfile generated by "llmctl show"\n'
        "# The weights are safetensors (2 shards in the store), which FROM cannot take as files: FROM names\n"
        "# the stored model, whose layers `llmctl create` reuses. llama.cpp serves GGUF only; for vLLM or\n"
        f"# SGLang, `llmctl export {ST} DIR` writes the model's folder.\n\n"
        f'FROM {ST}\nLICENSE "{(hf_folder[0] / "LICENSE").read_text()}"\n')
    assert str(home) not in text  # no blob path: `create` could not read a shard as a FROM file
    served = st_gateway.http.post("/api/show", json={"model": ST}).json()["modelfile"]
    assert served == text  # the gateway's /api/show prints the same Modelfile

    (tmp_path / "Modelfile").write_text(text)
    assert cli("create", "copy", "-f", str(tmp_path / "Modelfile")).code == 0
    layers = [[(d["mediaType"], d["digest"]) for d in json.loads(cli("inspect", n).stdout)["manifest"]["layers"]]
              for n in (ST, "copy")]
    assert layers[0] == layers[1]  # the same files, the license once
    assert cli("show", "copy", "--modelfile").stdout == text.replace(ST, "copy:latest")


_MESSAGES = [{"role": "user", "content": "hi"}]
_SCHEMA = {"type": "object", "properties": {}}
_TOOL = {"type": "function", "function": {"name": "now", "description": "The time.", "parameters": _SCHEMA}}
ENGINE_REQUESTS = {  # every route that would load an engine; tools, whose check looks at the model first, too
    "openai-chat": ("/v1/chat/completions", {"messages": _MESSAGES}),
    "openai-chat-tools": ("/v1/chat/completions", {"messages": _MESSAGES, "tools": [_TOOL]}),
    "openai-completions": ("/v1/completions", {"prompt": "hi"}),
    "openai-embeddings": ("/v1/embeddings", {"input": "hi"}),
    "responses": ("/v1/responses", {"input": "hi"}),
    "responses-tools": ("/v1/responses", {"input": "hi", "tools": [{"type": "function", "name": "now",
                                                                    "parameters": _SCHEMA}]}),
    "messages": ("/v1/messages", {"max_tokens": 8, "messages": _MESSAGES}),
    "messages-tools": ("/v1/messages", {"max_tokens": 8, "messages": _MESSAGES,
                                        "tools": [{"name": "now", "input_schema": _SCHEMA}]}),
    "ollama-chat": ("/api/chat", {"messages": _MESSAGES}),
    "ollama-chat-tools": ("/api/chat", {"messages": _MESSAGES, "tools": [_TOOL]}),
    "ollama-chat-tool-turn": ("/api/chat", {"messages": [*_MESSAGES, {"role": "tool", "content": "12:00"}]}),
    "ollama-chat-load": ("/api/chat", {"messages": []}),
    "ollama-generate": ("/api/generate", {"prompt": "hi"}),
    "ollama-generate-load": ("/api/generate", {}),
    "ollama-embed": ("/api/embed", {"input": "hi"}),
}


@pytest.mark.parametrize("case", ENGINE_REQUESTS)
def test_every_engine_route_refuses_safetensors_first(st_gateway, case: str) -> None:
    route, body = ENGINE_REQUESTS[case]
    r = st_gateway.http.post(route, json={"model": ST, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]  # Ollama: a string; OpenAI and Anthropic: an object with the message
    assert (error if isinstance(error, str) else error["message"]) == REFUSAL
    if not isinstance(error, str):
        assert error["type"] == "invalid_request_error"
    assert st_gateway.ps() == []  # nothing was loaded or evicted for it


# -- export --------------------------------------------------------------------------------------------
def test_export_of_a_gguf_model_links_copies_and_refuses(cli, home: Path, small_gguf: Path, tmp_path: Path) -> None:
    lic = tmp_path / "LICENSE.txt"
    lic.write_text("MIT\n")
    assert cli("package", "--gguf", str(small_gguf), "--license", str(lic), "-q", "tiny:q8").code == 0
    out = tmp_path / "gguf-out"
    r = cli("export", "tiny:q8", str(out), "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert (data["format"], sorted(data["files"])) == ("gguf", ["LICENSE.txt", small_gguf.name])
    assert data["linked_bytes"] == data["total_bytes"] and data["copied_bytes"] == 0
    assert (out / small_gguf.name).read_bytes() == small_gguf.read_bytes()

    r = cli("export", "tiny:q8", str(out))
    assert r.code == 10 and "is not empty" in r.stderr and "--force" in r.stderr
    (out / "notes.txt").write_text("mine")
    (out / small_gguf.name).unlink()
    r = cli("export", "tiny:q8", str(out), "--force", "--copy", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["linked_bytes"] == 0 and (out / "notes.txt").read_text() == "mine"
    assert (out / small_gguf.name).stat().st_nlink == 1  # a copy, not a link into the store
    (tmp_path / "a-file").write_text("x")
    r = cli("export", "tiny:q8", str(tmp_path / "a-file"))
    assert r.code == 4 and "not a folder" in r.stderr


def test_export_verifies_bytes_and_publishes_nothing_on_failure(hf_folder, settings: Settings, tmp_path: Path) -> None:
    folder, _ = hf_folder
    packaged = package(settings, "team/st:f16", PackageSpec(safetensors_dir=folder))
    model = get_model(settings, "team/st:f16")
    weights = model.weights[1]
    weights.chmod(0o644)
    with open(weights, "r+b") as f:  # a bit flips in the store
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    out = tmp_path / "parent" / "out"
    with pytest.raises(IntegrityError, match="does not match its digest"):
        export(settings, "team/st:f16", out)
    assert not out.exists() and list(out.parent.iterdir()) == []  # no half folder, no temp folder left
    assert packaged.digest == model.digest


def test_export_refuses_paths_that_leave_the_folder(settings: Settings, tmp_path: Path) -> None:
    import io
    import tarfile

    from llmctl.artifact.build import ConfigFacts
    from llmctl.artifact.ingest import commit_model
    from llmctl.oci.layout import Store
    from llmctl.oci.reference import parse

    store = Store(settings.store_dir).init()
    weights = tmp_path / "w.safetensors"
    from safetensors.numpy import save_file

    save_file({"t": np.zeros(4, dtype=np.float32)}, str(weights))
    w = store.put_bytes(weights.read_bytes())
    base = [mt_layer(mt.DMR_SAFETENSORS, w.digest, w.size, "model.safetensors")]

    def tar_with(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            good = tarfile.TarInfo("config.json")
            good.size = 2
            tar.addfile(good, io.BytesIO(b"{}"))
            member.size = len(data) if member.isreg() else 0
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
        return buf.getvalue()

    link = tarfile.TarInfo("evil-link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    cases = {
        "escape": [mt_layer(mt.DMR_MODEL_FILE, *_put(store, b"{}"), "../evil.json")],
        "absolute": [mt_layer(mt.DMR_MODEL_FILE, *_put(store, b"{}"), "/tmp/evil.json")],
        "tar-escape": [mt_layer(mt.DMR_CONFIG_ARCHIVE, *_put(store, tar_with(tarfile.TarInfo("../evil.json"))))],
        "tar-link": [mt_layer(mt.DMR_CONFIG_ARCHIVE, *_put(store, tar_with(link)))],
    }
    facts = ConfigFacts(format="safetensors")
    for tag, layers in cases.items():
        with store.writing():
            commit_model(store, [parse(f"hostile:{tag}")], base + layers, facts)
        out = tmp_path / "exports" / tag
        if tag == "tar-link":  # links are not files of a model: skipped, the rest exported
            export(settings, f"hostile:{tag}", out)
            assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
            continue
        with pytest.raises(InvalidModel, match="inside the model folder"):
            export(settings, f"hostile:{tag}", out)
        assert not out.exists()
    assert not (tmp_path / "exports" / "evil.json").exists() and not Path("/tmp/evil.json").exists()


def _put(store, data: bytes) -> tuple[str, int]:
    w = store.put_bytes(data)
    return w.digest, w.size


def mt_layer(media_type: str, digest: str, size: int, path: str | None = None):
    from llmctl.oci.descriptor import Descriptor

    return Descriptor(media_type, digest, size, {mt.ANNOTATION_FILEPATH: path} if path else {})


def test_source_date_epoch_makes_packaging_reproducible(hf_folder, cli, tmp_path: Path) -> None:
    """SOURCE_DATE_EPOCH (a setting, read in settings.py) is the config's creation time: the same folder gives the
    same manifest digest in any store, at any time; `create` honours it too."""
    folder, _ = hf_folder
    digests = []
    for home in ("a", "b"):
        env = {"LLMCTL_HOME": str(tmp_path / home), "SOURCE_DATE_EPOCH": "1700000000"}
        assert cli("package", "--safetensors-dir", str(folder), "-q", "team/repro:1", env=env).code == 0
        (tmp_path / "Modelfile").write_text("FROM team/repro:1\nSYSTEM be brief\n")
        assert cli("create", "team/derived:1", "-f", str(tmp_path / "Modelfile"), env=env).code == 0
        digests.append([json.loads(cli("inspect", n, env=env).stdout) for n in ("team/repro:1", "team/derived:1")])
    assert [d["digest"] for d in digests[0]] == [d["digest"] for d in digests[1]]
    assert {d["config"]["descriptor"]["created"] for d in digests[0]} == {"2023-11-14T22:13:20Z"}
