"""The model-management CLI end to end on the real Gemma GGUF, as a user's shell runs it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_version_and_help_are_fast(cli) -> None:
    start = time.monotonic()
    out = cli("--help")
    elapsed = time.monotonic() - start
    assert out.code == 0
    for command in ("create", "package", "list", "show", "inspect", "tag", "rm", "df", "prune", "verify"):
        assert command in out.stdout
    assert cli("--version").stdout.startswith("llmctl ")
    # --help must not import the heavy modules (this is a structural check, not a timing assertion)
    probe = cli("--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    for heavy in ("fastapi", "huggingface_hub", "llama_cpp", "uvicorn"):
        assert f"| {heavy}\n" not in probe.stderr and f" {heavy}\n" not in probe.stderr.replace("|", " ")
    assert elapsed < 60  # sanity bound for a hung process, not a performance assertion


def test_every_command_has_help_with_examples(cli) -> None:
    for command in ("create", "package", "list", "show", "inspect", "tag", "rm", "df", "prune", "verify"):
        out = cli(command, "--help")
        assert out.code == 0, command
        assert "Example" in out.stdout, command


def test_default_model_is_available_offline(cli) -> None:
    shown = cli("show", "gemma3:270m", "--json")
    assert shown.code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["architecture"] == "gemma3"
    assert data["quantization"] == "Q4_K_M"
    assert data["parameters"] == "268.10 M"
    assert data["context_length"] == 32768
    assert data["reference"] == "docker.io/library/gemma3:270m"
    listed = json.loads(cli("list", "--json").stdout)
    assert [m["name"] for m in listed] == ["gemma3:270m"]
    assert listed[0]["size"] > 250_000_000
    table = cli("list")
    assert "gemma3:270m" in table.stdout and "NAME" in table.stdout and "MODIFIED" in table.stdout


def test_create_from_stored_model_copies_no_weights(cli, home: Path, tmp_path: Path) -> None:
    assert cli("show", "gemma3:270m").code == 0
    blobs_before = {p.name for p in (home / "store" / "blobs" / "sha256").iterdir()}
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        'FROM gemma3:270m\nSYSTEM """You are a pirate."""\nPARAMETER temperature 0.2\nPARAMETER stop "<end>"\n'
        "PARAMETER stop User:\nMESSAGE user Ahoy?\nMESSAGE assistant Arr!\nLICENSE MIT\n"
    )
    out = cli("create", "pirate", "-f", str(modelfile))
    assert out.code == 0, out.stderr
    new_blobs = {p.name for p in (home / "store" / "blobs" / "sha256").iterdir()} - blobs_before
    sizes = [(home / "store" / "blobs" / "sha256" / b).stat().st_size for b in new_blobs]
    assert sizes and max(sizes) < 100_000  # only small layers, config and manifest are new
    data = json.loads(cli("show", "pirate", "--json").stdout)
    assert data["system"] == "You are a pirate."
    assert data["parameters_set"] == {"temperature": 0.2, "stop": ["<end>", "User:"]}
    assert data["messages"] == [{"role": "user", "content": "Ahoy?"}, {"role": "assistant", "content": "Arr!"}]
    assert data["license"][-1] == "MIT"
    assert data["weights"] == json.loads(cli("show", "gemma3:270m", "--json").stdout)["weights"]


def test_modelfile_round_trip(cli, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        'FROM gemma3:270m\nTEMPLATE """<start_of_turn>user\n{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n"""\n'
        'SYSTEM "Be brief."\nPARAMETER num_ctx 2048\nPARAMETER stop <end_of_turn>\nMESSAGE user "Say \\"hi\\""\n'
    )
    assert cli("create", "first", "-f", str(modelfile)).code == 0
    text = cli("show", "first", "--modelfile").stdout
    regenerated = tmp_path / "Regenerated"
    regenerated.write_text(text)
    out = cli("create", "second", "-f", str(regenerated))
    assert out.code == 0, out.stderr + text
    first = json.loads(cli("show", "first", "--json").stdout)
    second = json.loads(cli("show", "second", "--json").stdout)
    for key in ("system", "template", "parameters_set", "messages", "weights", "license", "architecture"):
        assert first[key] == second[key], key
    assert cli("show", "second", "--modelfile").stdout.split("\n", 4)[4] == text.split("\n", 4)[4]


def test_create_from_gguf_file_and_relative_paths(cli, tmp_path: Path, gemma_gguf: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "model.gguf").symlink_to(gemma_gguf)
    (folder / "Modelfile").write_text("FROM ./model.gguf\nPARAMETER seed 42\n")
    out = cli("create", "fromfile:v1", "-f", str(folder / "Modelfile"), cwd=tmp_path)
    assert out.code == 0, out.stderr
    data = json.loads(cli("show", "fromfile:v1", "--json").stdout)
    assert data["parameters_set"] == {"seed": 42}
    assert data["quantization"] == "Q4_K_M"


def test_split_gguf_becomes_ordered_layers(cli, tmp_path: Path, gemma_gguf: Path) -> None:
    """A split model given by one shard brings every shard, in order (llama-gguf-split's naming)."""
    import gguf

    shards = []
    for i in (1, 2):
        path = tmp_path / f"tiny-{i:05d}-of-00002.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_uint16("split.no", i - 1)
        writer.add_uint16("split.count", 2)
        import numpy as np

        writer.add_tensor(f"t{i}", np.ones((4, 4), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        shards.append(path)
    out = cli("package", "--gguf", str(shards[1]), "tiny:split", "-q")
    assert out.code == 0, out.stderr
    inspected = json.loads(cli("inspect", "tiny:split").stdout)
    titles = [d["annotations"]["org.opencontainers.image.title"] for d in inspected["manifest"]["layers"]]
    assert titles == ["tiny-00001-of-00002.gguf", "tiny-00002-of-00002.gguf"]
    assert inspected["config"]["config"]["parameters"] == "32"


def test_tag_rm_df_prune(cli, home: Path) -> None:
    assert cli("tag", "gemma3:270m", "localhost:5000/team/g:v1").code == 0
    names = [m["name"] for m in json.loads(cli("list", "--json").stdout)]
    assert sorted(names) == ["gemma3:270m", "localhost:5000/team/g:v1"]
    df = json.loads(cli("df", "--json").stdout)
    assert df["models"] == 2 and df["shared_bytes"] > 250_000_000
    out = cli("rm", "gemma3:270m")
    assert out.code == 0 and "deleted gemma3:270m" in out.stderr
    assert "freed" not in out.stderr  # the weights are still used by the other tag
    out = cli("rm", "localhost:5000/team/g:v1")
    assert "freed" in out.stderr
    assert list((home / "store" / "blobs" / "sha256").iterdir()) == []
    assert json.loads(cli("prune", "--json").stdout)["blobs_removed"] == 0


def test_rm_checks_every_name_first(cli) -> None:
    assert cli("show", "gemma3:270m").code == 0
    out = cli("rm", "gemma3:270m", "nosuch")
    assert out.code == 3 and "nosuch" in out.stderr
    assert cli("show", "gemma3:270m", "--json").code == 0  # nothing removed


BAD = [
    (("show", "Bad/Name"), 4, "lowercase"),
    (("show", "../x"), 4, "must not start"),
    (("show", "nosuch"), 3, "not found"),
    (("show", "x@sha256:123"), 4, "invalid digest"),
    (("tag", "gemma3:270m", "a:" + "b" * 200), 4, "longer than 128"),
    (("rm", "nosuch:tag"), 3, "not found"),
    (("package", "--gguf", "/nonexistent.gguf", "x"), 3, "no such file"),
    (("create", "x", "-f", "/nonexistent/Modelfile"), 3, "no such Modelfile"),
    (("inspect", "team//x"), 4, "empty path component"),
    (("list", "--bogus"), 2, "no such option: --bogus"),
]


@pytest.mark.parametrize("args, code, text", BAD)
def test_bad_input_is_one_clear_line(cli, args: tuple[str, ...], code: int, text: str) -> None:
    out = cli(*args)
    assert out.code == code, out.stderr
    assert text in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "content, line, text",
    [
        ("SYSTEM hi\n", None, "no FROM line"),
        ("FROM gemma3:270m\nBOGUS x\n", 2, "unknown instruction"),
        ("FROM gemma3:270m\n\nPARAMETER temperature\n", 3, ""),
        ('FROM gemma3:270m\nSYSTEM """never closed\n', None, ""),
        ("FROM gemma3:270m\nMESSAGE robot hi\n", 2, "role"),
        ("FROM gemma3:270m\nPARAMETER temperature hot\n", 2, "temperature"),
        ("FROM ./missing.gguf\n", 1, "missing.gguf"),
        ("FROM nosuchmodel\n", 1, "not found"),
        ("FROM gemma3:270m\nADAPTER ./nolora.gguf\n", 2, "nolora.gguf"),
    ],
)
def test_bad_modelfiles_name_file_and_line(cli, tmp_path: Path, content: str, line: int | None, text: str) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(content)
    out = cli("create", "x", "-f", str(modelfile))
    assert out.code == 4, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("llmctl: error:")]
    assert len(errors) == 1 and out.stderr.strip().endswith(errors[0]) and "Traceback" not in out.stderr
    message = errors[0]
    assert str(modelfile) in message
    if line is not None:
        assert f"{modelfile}:{line}:" in message
    assert text in message
    assert "x" not in [m["name"].split(":")[0] for m in json.loads(cli("list", "--json").stdout)]


def test_adapter_must_be_a_lora(cli, tmp_path: Path, gemma_gguf: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM gemma3:270m\nADAPTER {gemma_gguf}\n")
    out = cli("create", "x", "-f", str(modelfile))
    assert out.code == 4 and "not a LoRA adapter" in out.stderr and f"{modelfile}:2:" in out.stderr


def test_example_modelfiles_create(cli) -> None:
    for name in ("gemma3-270m.Modelfile", "few-shot.Modelfile"):
        out = cli("create", name.split(".")[0], "-f", str(ROOT / "modelfiles" / name))
        assert out.code == 0, (name, out.stderr)
