"""The fast dispatcher (`cli/fast.py`) against the typer app it stands in for.

Each hot command is run through both doors in real subprocesses: the fast one (`python -m llmctl ...`) and
the typer one (the same entry point with the fast dispatcher switched off), and their stdout, stderr and
exit codes must be the same bytes. The light commands must not import the heavy modules at all, and the
help typer prints for every command must read as typer users expect (TEXT/INTEGER, no `<str>`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from llmctl.cli import commands, fast, helptext
from llmctl.cli.app import typer_app

HEAVY = ("typer", "click", "rich", "pydantic", "httpx", "httpcore", "gguf", "numpy", "fastapi", "starlette",
         "uvicorn", "yaml", "jsonschema", "huggingface_hub", "llama_cpp")
TYPER_DOOR = ("import sys; import llmctl.cli.fast as f; f.dispatch = lambda args: None; "
              "from llmctl.cli.app import main; main(sys.argv[1:])")


def run(home: Path, *args: str, typer_door: bool = False, env: dict[str, str] | None = None,
        importtime: bool = False) -> subprocess.CompletedProcess[bytes]:
    """`llmctl ARGS` as a shell runs it, through the fast door or (typer_door) through typer."""
    python = [sys.executable, *(["-X", "importtime"] if importtime else [])]
    cmd = [*python, "-c", TYPER_DOOR, *args] if typer_door else [*python, "-m", "llmctl", *args]
    full_env = {**os.environ, "LLMCTL_HOME": str(home), "COLUMNS": "80", **(env or {})}
    return subprocess.run(cmd, capture_output=True, env=full_env, timeout=300)


def same_through_both_doors(home: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    quick, slow = run(home, *args, env=env), run(home, *args, typer_door=True, env=env)
    assert (quick.returncode, quick.stdout, quick.stderr) == (slow.returncode, slow.stdout, slow.stderr), args
    return quick.stdout


def imported(stderr: bytes) -> set[str]:
    """Top-level packages named by `python -X importtime`'s report."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +([\w.]+)$", stderr.decode(), re.M)
    return {name.split(".")[0] for name in names}


@pytest.fixture()
def store_home(cli, home: Path, tmp_path: Path) -> Path:
    """A home with the bundled model and one created from it with a SYSTEM, parameters and a license."""
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text('FROM gemma3:270m\nSYSTEM """Be brief.\nVery brief."""\nPARAMETER temperature 0.2\n'
                         'PARAMETER stop "<end>"\nMESSAGE user Hi\nMESSAGE assistant Hello\nLICENSE MIT\n')
    created = cli("create", "brief", "-f", str(modelfile))
    assert created.code == 0, created.stderr
    return home


def test_hot_commands_print_the_same_bytes_through_both_doors(store_home: Path) -> None:
    for args in (["list"], ["ls"], ["list", "--json"], ["list", "-q"], ["list", "--quiet", "--json"],
                 ["show", "brief"], ["show", "brief", "--json"], ["show", "brief", "--modelfile"],
                 ["show", "brief", "--license"], ["show", "gemma3:270m"], ["show", "nosuch"], ["show", "Bad/Name"],
                 ["--version"], ["-v"]):
        same_through_both_doors(store_home, *args)
    listed = same_through_both_doors(store_home, "list").decode().splitlines()
    assert listed[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert {line.split()[0] for line in listed[1:]} == {"brief:latest", "gemma3:270m"}
    shown = same_through_both_doors(store_home, "show", "brief").decode()
    assert "  Parameters\n    stop            '<end>'\n    temperature     0.2\n" in shown
    assert "  System\n    Be brief.\n    Very brief.\n" in shown


def test_root_help_is_the_same_through_both_doors_at_any_width(home: Path) -> None:
    for columns in ("80", "60", "132"):
        text = same_through_both_doors(home, "--help", env={"COLUMNS": columns}).decode()
        assert all(len(line) <= int(columns) for line in text.splitlines() if line.startswith(("│", "╭", "╰")))
    assert same_through_both_doors(home, "-h") == run(home).stdout  # `llmctl` alone prints it too
    assert run(home).returncode == 0
    text = run(home, "--help").stdout.decode()
    assert " Usage: llmctl [OPTIONS] COMMAND [ARGS]..." in text
    for entry in commands.COMMANDS:
        assert f"│ {entry.name} " in text
        for alias in entry.aliases:
            assert f"│ {alias} " not in text  # aliases stay hidden, as typer hides them


def test_no_gateway_is_the_same_error_through_both_doors(home: Path) -> None:
    env = {"LLMCTL_HOST": "127.0.0.1:9"}  # nothing listens on the discard port
    for args in (["ps"], ["ps", "--json"], ["ps", "--api-key", "k"]):
        same_through_both_doors(home, *args, env=env)
    r = run(home, "ps", env=env)
    assert r.returncode == 8 and r.stderr.decode().startswith("llmctl: error: no gateway is running at ")


def test_usage_errors_are_one_line_through_both_doors(home: Path) -> None:
    """What the fast doors (hot commands, pull/push) hand to typer fails as typer fails: one line, exit 2."""
    for args in (["show"], ["show", "a", "b"], ["list", "--bogus"], ["ps", "--api-key"], ["pull"],
                 ["pull", "-j", "99", "x"], ["push", "x", "--ca-cert"], ["pull", "x", "--export", ""]):
        same_through_both_doors(home, *args)
        r = run(home, *args)
        err = r.stderr.decode()
        assert r.returncode == 2 and err.count("\n") == 1 and err.startswith("llmctl: error: "), (args, err)
        assert err.endswith(f" (see 'llmctl {args[0]} --help')\n"), (args, err)


@pytest.mark.slow
def test_ps_is_the_same_through_both_doors(gateway_factory) -> None:
    from fixtures_gateway import MODEL

    gw = gateway_factory("--ctx-size", "512", api_key="s3cret")
    assert gw.http.post("/api/generate", json={"model": MODEL, "keep_alive": -1}).status_code == 200
    keyed = {"LLMCTL_API_KEY": "s3cret"}
    table = same_through_both_doors(gw.home, "ps", env=keyed).decode().splitlines()
    assert table[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "UNTIL", "PORT"]
    assert table[1].split()[0] == MODEL and "Forever" in table[1]
    rows = json.loads(same_through_both_doors(gw.home, "ps", "--json", env=keyed))
    assert [(r["name"], r["until"]) for r in rows] == [(MODEL, None)]
    assert same_through_both_doors(gw.home, "ps", "--api-key", "s3cret", "--json") == json.dumps(rows, indent=2).encode() + b"\n"
    refused = run(gw.home, "ps")
    same_through_both_doors(gw.home, "ps")
    assert refused.returncode == 7 and b"LLMCTL_API_KEY" in refused.stderr


def test_light_commands_import_no_heavy_module(store_home: Path) -> None:
    env = {"LLMCTL_HOST": "127.0.0.1:9"}
    for args in (["--help"], ["--version"], ["list"], ["list", "--json"], ["show", "brief"],
                 ["show", "brief", "--json"], ["show", "brief", "--modelfile"], ["ps"], ["ps", "--json"]):
        r = run(store_home, *args, env=env, importtime=True)
        assert r.returncode in (0, 8), (args, r.stderr[-2000:])
        assert not imported(r.stderr) & set(HEAVY), (args, sorted(imported(r.stderr) & set(HEAVY)))
    # the check can fail: the typer door does import them
    assert {"typer", "pydantic"} <= imported(run(store_home, "list", typer_door=True, importtime=True).stderr)


def test_fast_flags_are_exactly_the_typer_commands_flags() -> None:
    group = typer.main.get_command(typer_app())
    for name, hot in fast.HOT.items():
        command = group.commands[name]
        options = [p for p in command.params if p.opts and p.opts[0].startswith("-")]
        arguments = [p for p in command.params if p not in options]
        flags = {o for p in options if p.is_flag for o in p.opts}
        values = {o for p in options if not p.is_flag for o in p.opts}
        assert flags == set(hot.flags) and values == set(hot.values), name
        for p in options:
            assert {(hot.flags if p.is_flag else hot.values)[o] for o in p.opts} == {p.name}, (name, p.name)
        assert tuple(p.name for p in arguments) == hot.arguments and all(p.required for p in arguments), name
        assert all(p.envvar in (None, "LLMCTL_API_KEY") for p in options), name  # fast.py reads Settings.api_key
    aliases = {alias: entry.name for entry in commands.COMMANDS for alias in entry.aliases}
    assert {a: n for a, n in aliases.items() if n in fast.HOT} == fast.ALIASES


@pytest.mark.parametrize("args", [
    ["list", "--bogus"], ["list", "x"], ["list", "--json=1"], ["list", "--"], ["list", "-qj"], ["show"],
    ["show", "a", "b"], ["show", "-x"], ["show", ""], ["show", "a", "--help"], ["ps", "--api-key"],
    ["ps", "--api-key", "--json"], ["ps", "--api-key=k"], ["list", "-h"], ["pull", "x"], ["df"],
])
def test_anything_else_goes_to_typer(args: list[str]) -> None:
    name = fast.ALIASES.get(args[0], args[0])
    assert name not in fast.HOT or fast.parse(fast.HOT[name], args[1:]) is None


def test_the_command_table_says_what_each_command_says() -> None:
    app = typer_app()
    group = typer.main.get_command(app)
    for entry in commands.COMMANDS:
        target = entry.load()
        help_text = target.info.help if entry.group else target.__doc__
        assert entry.summary == helptext.summary(help_text or ""), entry.name
        for alias in entry.aliases:
            assert group.commands[alias].hidden and group.commands[alias].callback is not None
    listed = [n for n, c in group.commands.items() if not c.hidden]
    assert sorted(listed) == sorted(e.name for e in commands.COMMANDS)


def every_command(command: typer.core.TyperGroup, ctx) -> list[tuple[str, str]]:
    """(command path, help text) of a group and everything under it."""
    out = [(ctx.command_path, command.get_help(ctx))]
    for name in getattr(command, "commands", {}):
        sub = command.commands[name]
        sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
        out += every_command(sub, sub_ctx) if hasattr(sub, "commands") else [(sub_ctx.command_path, sub.get_help(sub_ctx))]
    return out


def test_every_help_reads_as_typer_users_expect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    group = typer.main.get_command(typer_app())
    root = group.context_class(group, info_name="llmctl", help_option_names=list(commands.HELP_OPTIONS))
    pages = every_command(group, root)
    assert len(pages) > len(commands.COMMANDS)
    for path, text in pages:
        assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])>", text), path
        assert not re.search(r"\w \.(\s|$)", text) and "{" not in text.split("\n")[1], path  # no stray " .", no {name}
        assert "Usage: " + path in text, path
        for line in text.splitlines():
            cells = line.strip("│ ").split()
            if line.startswith("│ --") and len(cells) > 1 and cells[1].isupper() and cells[1].isalpha():
                assert cells[1] in ("TEXT", "INTEGER", "FLOAT", "PATH"), (path, line)
    plan = dict(pages)["llmctl plan"]
    assert "GPUs per node [default: the profile's, 8]." in plan  # help text is taken literally, not as markup
    assert "Usage: llmctl plan [OPTIONS] MODEL" in plan
    pull = dict(pages)["llmctl pull"]
    assert re.search(r"--concurrency +-j +INTEGER +Blobs transferred in parallel\. \[1<=x<=32\]", pull)
    assert re.search(r"│ --json +Print the result as JSON\.", pull)  # a flag shows no type


def test_help_layout() -> None:
    page = helptext.Page("tool [OPTIONS] NAME", "First paragraph that is long enough to wrap somewhere.\n\n"
                         "Examples:\n\n  tool a-very-long-example-line-that-is-never-wrapped --with many --flags",
                         (helptext.Panel("Options", (helptext.Row(("", "--json", "", ""), "Print JSON."),
                                                      helptext.Row(("*", "--name", "-n", "TEXT"), "x " * 30))),))
    text = helptext.render(page, 50)
    lines = text.splitlines()
    assert lines[:4] == ["", " Usage: tool [OPTIONS] NAME", "", " First paragraph that is long enough to wrap"]
    assert "   tool a-very-long-example-line-that-is-never-wrapped --with many --flags" in lines
    boxed = [line for line in lines if line[:1] and line[0] in "╭│╰"]
    assert boxed[0] == "╭─ Options " + "─" * 38 + "╮" and all(len(b) == 50 for b in boxed)
    assert boxed[1] == "│    --json            Print JSON.".ljust(48) + " │"
    assert boxed[2] == "│ *  --name  -n  TEXT  x x x x x x x x x x x x x │"
    assert boxed[3] == "│                      x x x x x x x x x x x x x │"
    narrow = helptext.render(page, 40).splitlines()  # the help column keeps 20 characters: the box grows
    assert {len(line) for line in narrow if line[:1] and line[0] in "╭│╰"} == {45}
    ascii_text = helptext.render(page, 40, unicode=False)
    assert "+- Options ---" in ascii_text and "│" not in ascii_text


def test_help_without_a_unicode_terminal(home: Path) -> None:
    r = run(home, "--help", env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and r.stdout.isascii() and b"+- Commands -" in r.stdout


def test_model_text_cannot_drive_the_terminal(cli, home: Path, tmp_path: Path) -> None:
    """A license from someone else's artifact shows with its control characters made visible."""
    weights = json.loads(cli("show", "gemma3:270m", "--json").stdout)["weights"][0]
    license = tmp_path / "LICENSE"
    license.write_bytes(b"EVIL\x1b]0;owned\x07 license\x1b[2J\nline 2\n")
    assert cli("package", "--gguf", weights, "--license", str(license), "evil").code == 0
    shown = same_through_both_doors(home, "show", "evil").decode()
    assert "\x1b" not in shown and "\x07" not in shown and "EVIL\ufffd]0;owned\ufffd license\ufffd[2J" in shown
    assert run(home, "show", "evil", "--license").stdout == license.read_bytes()  # a pipe gets the exact bytes
    data = json.loads(run(home, "show", "evil", "--json").stdout)
    assert data["license"] == [license.read_text()]  # JSON keeps the exact text, escaped
