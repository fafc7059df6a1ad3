"""`llmctl runtime install`: one build per runtime at a time, and build progress counted in steps.

A real llama.cpp build takes 8 minutes on 2 cores, so these tests build a stand-in through the same
path: `--source` a tiny CMake tree whose `llama-server` target is one C file, preceded by a gate target
that records each build and holds it until the test says go. Everything else is real: two `llmctl`
processes, the flock in runtime/build.py, cmake and ninja, the smoke test, the install rename.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from llmctl.cli.render import CliProgress
from llmctl.progress import BYTES, STEPS

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("cc")), reason="needs cmake and a C compiler")

DEADLINE_S = 300


def fake_llama_cpp(root: Path, gate: Path) -> Path:
    """A source tree `runtime install --source` accepts; its build appends to gate/builds and waits for gate/go."""
    tree = root / "llama.cpp"
    (tree / "tools" / "server").mkdir(parents=True)
    (tree / "server.c").write_text('#include <stdio.h>\nint main(void) { puts("version: 1 (stand-in)"); return 0; }\n')
    (tree / "gate.cmake").write_text(
        f'file(APPEND "{gate}/builds" "build\\n")\n'
        f"foreach(i RANGE {DEADLINE_S * 10})\n"
        f'  if(EXISTS "{gate}/go")\n    break()\n  endif()\n'
        "  execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 0.1)\n"
        "endforeach()\n"
    )
    (tree / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.14)\nproject(stand_in C)\n"
        "add_custom_target(gate COMMAND ${CMAKE_COMMAND} -P ${CMAKE_SOURCE_DIR}/gate.cmake VERBATIM)\n"
        "add_executable(llama-server server.c)\nadd_dependencies(llama-server gate)\n"
    )
    return tree


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_second_install_waits_for_the_first_and_reuses_its_build(home: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    tree = fake_llama_cpp(tmp_path, gate)
    cmd = [sys.executable, "-m", "llmctl", "runtime", "install", "--source", str(tree), "--json"]
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    logs = {name: (tmp_path / f"{name}.out", tmp_path / f"{name}.err") for name in ("first", "second")}

    def start(name: str) -> subprocess.Popen:
        out, err = logs[name]
        return subprocess.Popen(cmd, env=env, stdout=out.open("w"), stderr=err.open("w"), stdin=subprocess.DEVNULL)

    first = start("first")
    try:
        wait_for(lambda: (gate / "builds").exists() or first.poll() is not None, "the first build to start")
        assert first.poll() is None, logs["first"][1].read_text()
        second = start("second")
        try:
            waiting = f"waiting for another `llmctl runtime install` (pid {first.pid}) to finish"
            wait_for(lambda: waiting in logs["second"][1].read_text() or second.poll() is not None,
                     "the second install to wait")
            assert waiting in logs["second"][1].read_text()
            (gate / "go").touch()
            assert first.wait(DEADLINE_S) == 0, logs["first"][1].read_text()
            assert second.wait(DEADLINE_S) == 0, logs["second"][1].read_text()
        finally:
            second.kill()
    finally:
        (gate / "go").touch()
        first.kill()
    built, reused = (json.loads(logs[n][0].read_text()) for n in ("first", "second"))
    assert (built["reused"], reused["reused"]) == (False, True)
    assert reused["path"] == built["path"]
    assert (gate / "builds").read_text() == "build\n"  # compiled once
    assert subprocess.run([built["path"], "--version"], capture_output=True, text=True).stdout.startswith("version: 1")
    progress = logs["first"][1].read_text()
    assert "compiling llama-server (cpu): " in progress and " steps" in progress
    assert "compiling llama-server (cpu): done in" in progress
    assert " B at " not in progress and " B/s" not in progress  # steps are steps, not bytes


def test_a_new_install_after_the_first_finished_reuses_it_without_waiting(home: Path, tmp_path: Path, cli) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "go").touch()
    tree = fake_llama_cpp(tmp_path, gate)
    assert cli("runtime", "install", "--source", str(tree), "--json").code == 0
    again = cli("runtime", "install", "--source", str(tree), "--json")
    assert again.code == 0 and json.loads(again.stdout)["reused"] is True
    assert "waiting" not in again.stderr
    forced = cli("runtime", "install", "--source", str(tree), "--force", "--json")
    assert forced.code == 0 and json.loads(forced.stdout)["reused"] is False
    assert (gate / "builds").read_text() == "build\nbuild\n"


def _console(terminal: bool) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=120, color_system=None)


def test_steps_read_as_steps_and_bytes_as_bytes_in_plain_lines() -> None:
    log = _console(terminal=False)
    with CliProgress(console=log) as progress:
        progress.start("compile", "compiling llama-server (cpu)", 48, unit=STEPS)
        progress.advance("compile", 12)
        progress.finish("compile")
        progress.start("blob", "pulling abc", 2_000_000, unit=BYTES)
        progress.advance("blob", 1_000_000)
        progress.finish("blob")
    lines = log.file.getvalue().splitlines()
    assert lines[:2] == ["compiling llama-server (cpu): 48 steps", "compiling llama-server (cpu): step 12/48"]
    assert lines[2].startswith("compiling llama-server (cpu): done in ")
    assert lines[3] == "pulling abc (2.0 MB): started"
    assert lines[4].startswith("pulling abc: 50% 1.0 MB at ")


def test_steps_read_as_steps_and_bytes_as_bytes_on_a_terminal() -> None:
    console = _console(terminal=True)
    with CliProgress(console=console) as progress:
        progress.start("compile", "compiling llama-server (cpu)", 48, unit=STEPS)
        progress.advance("compile", 12)
        progress.start("blob", "pulling abc", 2_000_000, unit=BYTES)
        progress.advance("blob", 1_000_000)
        progress._rich.refresh()
    screen = console.file.getvalue()
    assert "12/48 steps" in screen
    assert "1.0/2.0 MB" in screen
    assert "12 bytes" not in screen and "12/48 B" not in screen
