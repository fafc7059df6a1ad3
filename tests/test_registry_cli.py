"""`llmctl pull`/`push` as a shell runs them: the direct dispatch in `cli/app._fast_transfer` accepts exactly
the typer commands' flags, leaves everything else to typer, and a `-q` transfer imports no UI library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_registry import RegistryServer
from llmctl.api.models import get_model
from llmctl.api.package import PackageSpec, package
from llmctl.api.push import push
from llmctl.cli import app as app_module
from llmctl.settings import Settings

UI_MODULES = ("typer", "click", "rich", "pydantic")


def test_fast_flags_are_exactly_the_typer_commands_flags() -> None:
    import typer.main

    group = typer.main.get_command(app_module.typer_app())
    for name in app_module.FAST_COMMANDS:
        params = group.commands[name].params
        options = [p for p in params if any(o.startswith("-") for o in p.opts)]
        arguments = [p for p in params if p not in options]
        assert len(arguments) == 1, name
        own = app_module.FAST_OWN_VALUES[name]
        seen = {o for p in options for o in p.opts}
        assert seen == set(app_module.FAST_FLAGS) | set(app_module.FAST_VALUES) | set(own), name
        for p in options:
            for o in p.opts:
                table = app_module.FAST_FLAGS if p.is_flag else {**app_module.FAST_VALUES, **own}
                assert table.get(o) == p.name, (name, o)
        defaults = {p.name: p.default for p in options}
        assert defaults == {"concurrency": 3, "insecure": False, "ca_cert": None, "quiet": False, "json_": False,
                            **{key: None for key in own.values()}}
        concurrency = next(p for p in options if p.name == "concurrency")
        assert range(concurrency.min, concurrency.max + 1) == app_module.FAST_CONCURRENCY


@pytest.mark.parametrize("args", [
    [], ["list"], ["-v", "pull", "x"], ["pull"], ["pull", "a", "b"], ["pull", "--help"], ["push", "-h"],
    ["pull", "-j", "0", "x"], ["pull", "-j", "33", "x"], ["pull", "-j", "two", "x"], ["pull", "-j"],
    ["pull", "--concurrency=2", "x"], ["pull", "-qj", "2", "x"], ["pull", "--", "x"], ["pull", "x", "--bogus"],
    ["push", "--ca-cert"], ["push", "x", "--ca-cert", "--json"], ["pull", ""],
    ["push", "--export", "dir", "x"], ["pull", "x", "--export"], ["pull", "--export", "-q", "x"],
    ["pull", "--export=dir", "x"],
])
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert app_module._fast_transfer(args) is None


def test_hf_names_are_recognised_without_importing_the_hf_source() -> None:
    code = ("import sys; from llmctl.api.pull import pull; from llmctl.names import is_hf_name; "
            "assert is_hf_name('hf.co/Org/Repo:Q4_K_M') and not is_hf_name('docker.io/org/repo'); "
            "print('llmctl.sources.hf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def _llmctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "llmctl", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_quiet_push_and_pull_load_no_ui_library_and_the_rest_still_prints(
    registry: RegistryServer, small_gguf: Path, tmp_path: Path
) -> None:
    name = f"{registry.host}/team/tiny:v1"
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_")}
    src = {**base, "LLMCTL_HOME": str(tmp_path / "src")}
    package(Settings.from_env(src), name, PackageSpec(gguf=small_gguf))

    pushed = _llmctl(src, "push", "-q", name)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout == ""
    loaded = {m.split(".")[0] for m in _imported(pushed.stderr)}
    assert not loaded & set(UI_MODULES), loaded & set(UI_MODULES)

    dst = {**base, "LLMCTL_HOME": str(tmp_path / "dst")}
    pulled = _llmctl(dst, "pull", name, "-q", "--json", "-j", "2")
    assert pulled.returncode == 0, pulled.stderr
    result = json.loads(pulled.stdout)
    assert result["downloaded_bytes"] == result["total_bytes"] > 0
    assert not {m.split(".")[0] for m in _imported(pulled.stderr)} & set(UI_MODULES)
    model = get_model(Settings.from_env(dst), name)
    assert model.weights[0].read_bytes() == small_gguf.read_bytes()

    again = subprocess.run([sys.executable, "-m", "llmctl", "pull", name], env=dst, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "pulled" in again.stderr and "already here" in again.stderr
    repush = subprocess.run([sys.executable, "-m", "llmctl", "push", name, "--json"], env=src, capture_output=True,
                            text=True, timeout=120)
    assert repush.returncode == 0 and json.loads(repush.stdout)["uploaded_bytes"] == 0


def test_pull_export_lays_the_pulled_model_out_through_both_doors(registry: RegistryServer, tmp_path: Path) -> None:
    from safetensors_model import make_model

    name = f"{registry.host}/team/tiny-st:f16"
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_")}
    make_model(tmp_path / "hf", shards=2)
    src = Settings.from_env({**base, "LLMCTL_HOME": str(tmp_path / "src")})
    package(src, name, PackageSpec(safetensors_dir=tmp_path / "hf"))
    push(src, name)
    dst = {**base, "LLMCTL_HOME": str(tmp_path / "dst")}

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    refused = _llmctl(dst, "pull", name, "--export", str(busy))  # checked before the pull: nothing downloaded
    assert refused.returncode == 10 and "is not empty" in refused.stderr and "llmctl export" in refused.stderr
    assert refused.stderr.count("llmctl: error:") == 1 and "Traceback" not in refused.stderr
    assert not (tmp_path / "dst" / "store").exists() or json.loads(_llmctl(dst, "list", "--json").stdout) == []

    quiet = _llmctl(dst, "pull", "-q", "--json", name, "--export", str(tmp_path / "a"))  # the api function alone
    assert quiet.returncode == 0, quiet.stderr
    assert not {m.split(".")[0] for m in _imported(quiet.stderr)} & set(UI_MODULES)
    result = json.loads(quiet.stdout)
    assert result["downloaded_bytes"] == result["total_bytes"] > 0
    assert result["export"]["format"] == "safetensors" and result["export"]["directory"] == str(tmp_path / "a")
    for source in (tmp_path / "hf").iterdir():  # the folder that was packaged, file for file
        assert (tmp_path / "a" / source.name).read_bytes() == source.read_bytes(), source.name


    for door, out, args in (("fast", tmp_path / "b", ["pull", name, "--export", str(tmp_path / "b")]),
                            ("typer", tmp_path / "c", ["pull", f"--export={tmp_path / 'c'}", name])):
        shown = _llmctl(dst, *args)
        assert shown.returncode == 0, (door, shown.stderr)
        lines = [line for line in shown.stderr.splitlines() if not line.startswith("import time:")]
        assert lines[-2].startswith(f"pulled {name} (") and "already here" in lines[-2], (door, lines)
        assert lines[-1].startswith(f"exported {name} (safetensors, ") and lines[-1].endswith(f" to {out}"), (door, lines)
        assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "a"))
