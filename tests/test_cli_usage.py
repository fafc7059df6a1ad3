"""Usage errors (click's, raised while typer parses) are one line on stderr with exit code 2, for every command.

click would print the usage, a 'Try ... for help.' line, a blank line and 'Error: ...'; llmctl's rule is
one line (docs/exit-codes.md). Every command is walked in process through `cli.app.main` (the entry point
the `llmctl` script runs): no arguments, an unknown option, an option left without its value, and a value
that does not parse for each number option. The hot commands' fast door (`cli/fast.py`) hands anything it
does not parse to typer, so its errors are the same bytes: tests/test_cli_fast.py checks that in subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from llmctl.cli.app import main, typer_app

USAGE_EXIT = 2  # docs/exit-codes.md: UsageError, "also typer/click usage errors"


def leaf_commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    """(words that name it, command) for every visible command, groups' commands included."""
    found = []

    def walk(command, words: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk(sub, [*words, name]) if hasattr(sub, "commands") else found.append(([*words, name], sub))

    walk(typer.main.get_command(typer_app()), [])
    return found


def bad_invocations() -> list[tuple[list[str], str]]:
    """(argv, what the one line must say) for every command."""
    cases = []
    for words, command in leaf_commands():
        options = [p for p in command.params if p.param_type_name == "option"]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        if any(p.required for p in arguments):  # with nothing required, no arguments would run the command
            first = next(p for p in arguments if p.required)
            cases.append((words, f"missing argument {first.name.upper()}"))
        cases.append(([*words, "--no-such-option"], "no such option: --no-such-option"))
        for option in (p for p in options if not p.is_flag):
            cases.append(([*words, option.opts[0]], f"option '{option.opts[0]}' requires an argument"))
            if option.type_descriptor.annotation in (int, float):
                cases.append(([*words, option.opts[0], "not-a-number"], f"invalid value for '{option.opts[0]}'"))
    return cases


CASES = bad_invocations()


def test_the_walk_covers_every_kind_of_mistake() -> None:
    said = [text for _, text in CASES]
    assert len({tuple(argv[:1]) for argv, _ in CASES}) >= 20  # every top-level command
    for kind in ("missing argument", "no such option", "requires an argument", "invalid value"):
        assert sum(kind in text for text in said) >= 3, kind


@pytest.mark.parametrize("argv, text", CASES, ids=[" ".join(argv) for argv, _ in CASES])
def test_usage_errors_are_one_line(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], text: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == USAGE_EXIT, err
    assert out == ""
    command = " ".join(["llmctl", *(w for w in argv if not w.startswith("-") and w != "not-a-number")])
    assert err.count("\n") == 1 and err.startswith(f"llmctl: error: {text}"), err
    assert err.endswith(f" (see '{command} --help')\n"), err
    assert "Traceback" not in err and "Usage:" not in err


@pytest.mark.parametrize("argv, line", [
    (["export"], "llmctl: error: missing argument NAME (see 'llmctl export --help')\n"),
    (["tag", "onlyone"], "llmctl: error: missing argument TARGET (see 'llmctl tag --help')\n"),
    (["show", "a", "b"], "llmctl: error: got unexpected extra argument(s) (b) (see 'llmctl show --help')\n"),
    (["runtime", "install", "--bogus"],
     "llmctl: error: no such option: --bogus; did you mean --jobs? (see 'llmctl runtime install --help')\n"),
    (["nosuchcommand"], "llmctl: error: no such command 'nosuchcommand' (see 'llmctl --help')\n"),
    (["pull", "-j", "99", "x"],
     "llmctl: error: invalid value for '--concurrency' / '-j': Input should be less than or equal to 32 "
     "(see 'llmctl pull --help')\n"),
    (["export", "gemma3:270m", ""], "llmctl: error: invalid value for DIRECTORY: an empty path names no folder "
     "(pass . for the current one) (see 'llmctl export --help')\n"),
    (["pull", "gemma3:270m", "--export", ""], "llmctl: error: invalid value for '--export': an empty path names no "
     "folder (pass . for the current one) (see 'llmctl pull --help')\n"),
])
def test_usage_error_wording(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], line: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert (exited.value.code, capsys.readouterr().err) == (USAGE_EXIT, line)


# A list or duration flag llmctl parses itself follows typer's rule for its own number options (`--isl abc` is
# a usage error, `--isl 0` is InvalidInput): a value that does not parse is exit 2, one that parses but is out
# of range is exit 4. Port 9 (discard) is never contacted: every one is refused before a request.
@pytest.mark.parametrize("argv, code, words", [
    (["bench", "http://127.0.0.1:9", "--concurrency", "abc"], USAGE_EXIT, "--concurrency: 'abc' is not a number"),
    (["bench", "http://127.0.0.1:9", "-c", "1.5"], USAGE_EXIT, "--concurrency: whole numbers only"),
    (["bench", "http://127.0.0.1:9", "-c", ","], USAGE_EXIT, "--concurrency: give at least one value"),
    (["bench", "http://127.0.0.1:9", "-r", "1,x"], USAGE_EXIT, "--request-rate: 'x' is not a number"),
    (["bench", "http://127.0.0.1:9", "--percentiles", "p99"], USAGE_EXIT, "--percentiles: 'p99' is not a number"),
    (["bench", "http://127.0.0.1:9", "--goodput", "ttft:fast"], USAGE_EXIT, "'fast' is not a number of milliseconds"),
    (["bench", "http://127.0.0.1:9", "--goodput", "ttft"], USAGE_EXIT, "is not KEY:MILLISECONDS"),
    (["plan", "llama3.1:8b", "--ttft-slo", "fast"], USAGE_EXIT, "--ttft-slo 'fast' is not a duration"),
    (["bench", "http://127.0.0.1:9", "-c", "0"], 4, "each value must be a positive number"),
    (["bench", "http://127.0.0.1:9", "--goodput", "ttft:-1"], 4, "non-negative"),
    (["bench", "http://127.0.0.1:9", "--percentiles", "100"], 4, "between 0 and 100"),
    (["plan", "llama3.1:8b", "--ttft-slo", "0ms"], 4, "must be a positive, finite duration"),
])
def test_a_value_that_does_not_parse_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture[str],
                                                       argv: list[str], code: int, words: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == code, err
    assert err.count("\n") == 1 and err.startswith("llmctl: error: ") and words in err, err


def test_typed_text_cannot_drive_the_terminal(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["list", "--x\x1b[2J\x07"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\x07" not in err


def test_an_empty_folder_is_not_the_working_directory(cli, tmp_path: Path) -> None:
    """`llmctl export NAME "$UNSET"` used to lay the model out in the working directory."""
    for argv in (["export", "gemma3:270m", ""], ["export", "gemma3:270m", "", "--force"]):
        out = cli(*argv, cwd=tmp_path)
        assert out.code == USAGE_EXIT and "an empty path names no folder" in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_output_path_in_the_way_is_a_one_line_conflict(home: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`plan -o FILE` was 'File exists' (exit 1); `bench -o DIR` failed after the whole run. Port 9 is never
    contacted: bench refuses its paths before the first request."""
    taken = tmp_path / "taken"
    taken.write_text("mine\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    for argv, words in (
        (["plan", "llama3.1:8b", "-f", "json", "-o", str(taken)], f"--output {taken} is a file, not a directory"),
        (["bench", "http://127.0.0.1:9", "-o", str(folder)], f"--output {folder} is a directory, not a file"),
        (["bench", "http://127.0.0.1:9", "--plot", str(taken / "c.svg")], f"{taken} is a file, not a directory"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 10 and err.count("\n") == 1 and words in err, err
    assert taken.read_text() == "mine\n" and list(folder.iterdir()) == []
