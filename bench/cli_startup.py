"""CLI start-up benchmark: how long `llmctl --help`, `list`, `show` and `ps` take, against Python itself.

    .venv/bin/python bench/cli_startup.py [--runs 30] [--write docs/benchmarks.md]

Every command is a fresh process of the installed `llmctl` script (as a shell or a script's loop runs it),
timed from spawn to exit, with its own user+sys CPU time from wait4(2); CPU time is what the command itself
burns, so other load on the machine disturbs it less than wall time. The references, measured in the same
rounds: `python -c pass` (the interpreter's start-up with site-packages, what any Python CLI pays) and
`python -S -c pass` (without site). The store holds one model (the bundled Gemma 3 270M); `ps` asks a real
`llmctl serve` gateway started for the run (no model loaded). The `typer` rows run the same commands through
the typer app (the fast dispatcher switched off): what they cost before it. Rounds interleave the commands so
load slows them alike; the table reports medians, and the load average at the start and at the end. Where
valgrind is installed, each command also runs once under callgrind for its instruction count, which load
does not change at all. llmctl's modules are byte-compiled first, as an installed package's are. With
`--before REV` (a git revision, e.g. the commit before the fast CLI), that revision's `src/llmctl` is
measured in the same rounds (`before:` rows, same interpreter and packages). With `--realtime` (root), each
measured command runs under SCHED_FIFO (`chrt -f 1`), so other work on a shared machine cannot preempt it
and wall time shows what the command takes on this machine rather than what the neighbours leave it. With
`--write`, the table replaces the `## CLI start-up` section of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LLMCTL = str(Path(PY).with_name("llmctl"))
TYPER_DOOR = ("import sys; import llmctl.cli.fast as f; f.dispatch = lambda args: None; "
              "from llmctl.cli.app import main; main(sys.argv[1:])")
BEFORE_DOOR = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
               "from llmctl.cli.app import main; main(sys.argv[1:])")
GOAL_MS = 150  # issue #16: `list` and `--help` (and their --json) within this, on this machine
GOAL = ("llmctl --help", "llmctl list", "llmctl list --json")


@dataclass
class Case:
    label: str
    argv: list[str]
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    instructions: int | None = None

    def wall_ms(self) -> float:
        return statistics.median(self.walls) * 1000

    def cpu_ms(self) -> float:
        return statistics.median(self.cpus) * 1000


def cases(before: Path | None) -> list[Case]:
    llmctl = [("llmctl --help", ["--help"]), ("llmctl --version", ["--version"]), ("llmctl list", ["list"]),
              ("llmctl list --json", ["list", "--json"]), ("llmctl show gemma3:270m", ["show", "gemma3:270m"]),
              ("llmctl show gemma3:270m --json", ["show", "gemma3:270m", "--json"]), ("llmctl ps", ["ps"]),
              ("llmctl ps --json", ["ps", "--json"])]
    typer = [("--help", ["--help"]), ("list", ["list"]), ("list --json", ["list", "--json"]), ("ps", ["ps"])]
    out = ([Case("python -c pass", [PY, "-c", "pass"]), Case("python -S -c pass", [PY, "-S", "-c", "pass"])]
           + [Case(label, [LLMCTL, *args]) for label, args in llmctl]
           + [Case(f"typer: llmctl {label}", [PY, "-c", TYPER_DOOR, *args]) for label, args in typer])
    if before is not None:
        out += [Case(f"before: llmctl {label}", [PY, "-c", BEFORE_DOOR, str(before), *args]) for label, args in typer]
    return out


def checkout(rev: str, into: Path) -> Path:
    """`src/` of git revision `rev`, byte-compiled: the code to measure in the `before:` rows."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/llmctl"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    subprocess.run([PY, "-m", "compileall", "-q", str(into / "src" / "llmctl")], check=True)
    return into / "src"


def measure(case: Case, env: dict[str, str], realtime: bool = False) -> None:
    """One timed run: wall from spawn to exit, CPU from the child's own rusage (wait4)."""
    argv = [*(["chrt", "-f", "1"] if realtime else []), *case.argv]  # chrt execs the command: same pid
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        case.walls.append(time.perf_counter() - start)
        case.cpus.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"{case.label} failed ({proc.returncode}): {err.read().decode(errors='replace')[-2000:]}")


def count_instructions(case: Case, env: dict[str, str]) -> None:
    """The command's instruction count (user space, the process alone) from one callgrind run."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *case.argv], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=600)
    found = re.search(rb"== Collected : (\d+)", proc.stderr)
    case.instructions = int(found.group(1)) if found else None


def start_gateway(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([LLMCTL, "serve", "--host", "127.0.0.1", "--port", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            state = json.loads((home / "run" / "gateway.json").read_text())
            with urllib.request.urlopen(state["url"] + "/health", timeout=2) as r:
                if r.status == 200 and state.get("pid") == proc.pid:
                    return proc
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            sys.exit(f"llmctl serve exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("llmctl serve did not come up in 120 s")


def run(runs: int, home: Path, before: Path | None, realtime: bool) -> tuple[list[Case], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_")}
    env.update(LLMCTL_HOME=str(home), LLMCTL_OFFLINE="1", COLUMNS="80")
    import llmctl

    # an installed package has its bytecode compiled by pip; an editable checkout under PYTHONDONTWRITEBYTECODE not
    subprocess.run([PY, "-m", "compileall", "-q", str(Path(llmctl.__file__).parent)], check=True)
    subprocess.run([LLMCTL, "show", "gemma3:270m"], env=env, check=True, capture_output=True)  # install the model
    gateway = start_gateway(home, env)
    load_start = os.getloadavg()[0]
    try:
        all_cases = cases(before)
        for case in all_cases:  # warm the page cache and .pyc files; not counted
            measure(case, env, realtime)
            case.walls.clear()
            case.cpus.clear()
        for _ in range(runs):
            for case in all_cases:
                measure(case, env, realtime)
        if shutil.which("valgrind"):
            for case in all_cases:
                count_instructions(case, env)
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(30)
    facts = {"load_start": f"{load_start:.1f}", "load_end": f"{os.getloadavg()[0]:.1f}",
             "cpus": str(os.cpu_count()), "python": sys.version.split()[0]}
    if realtime:
        facts["realtime"] = "1"
    return all_cases, facts


def table(rows: list[Case], facts: dict[str, str], runs: int) -> str:
    base = next(r for r in rows if r.label == "python -c pass")
    lines = [
        "## CLI start-up",
        "",
        f"`bench/cli_startup.py` ({runs} runs, median): each command a fresh process of the installed `llmctl` "
        f"script, timed spawn to exit, with its own user+sys CPU time (wait4), on this machine ({facts['cpus']} "
        f"cores, Python {facts['python']}); a store with one model, `ps` against a running `llmctl serve` with "
        f"nothing loaded. Load average (1 min) {facts['load_start']} at the start and {facts['load_end']} at the "
        "end (other work shares the cores: CPU time is steadier, and callgrind's instruction count does not depend on "
        "load at all)"
        + ("; every measured command ran under SCHED_FIFO (`chrt -f 1`), so that load could not preempt it. "
           if "realtime" in facts else ". ")
        + "`typer:` rows run the same command "
        "through the typer app, as every command ran before the fast dispatcher; "
        + (f"`before:` rows run the code of commit {facts['before']}, the one this work started from (same "
           "interpreter, packages, store and gateway). " if "before" in facts else "")
        + f"Goal (issue #16): `--help`, `list` and `list --json` within {GOAL_MS} ms.",
        "",
        "| command | wall ms | min-max | CPU ms | instructions | wall vs `python -c pass` | CPU vs `python -c pass` "
        "| instructions vs `python -c pass` | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        goal = ("met" if r.wall_ms() <= GOAL_MS else "MISSED") if r.label in GOAL else ""
        ins = f"{r.instructions / 1e6:.0f} M" if r.instructions else "-"
        ins_ratio = f"{r.instructions / base.instructions:.1f}x" if r.instructions and base.instructions else "-"
        lines.append(f"| `{r.label}` | {r.wall_ms():.0f} | {min(r.walls) * 1000:.0f}-{max(r.walls) * 1000:.0f} | "
                     f"{r.cpu_ms():.0f} | {ins} | {r.wall_ms() / base.wall_ms():.1f}x | "
                     f"{r.cpu_ms() / base.cpu_ms():.1f}x | {ins_ratio} | {goal} |")
    lines += [
        "",
        "`--help`, `--version`, `list`, `show` and `ps` (with `--json`, `-q`) run through `cli/fast.py`, which "
        "imports neither typer, click, pydantic nor rich, and `ps` talks to the gateway over `http.client` "
        "instead of httpx (whose import alone pulls in click, rich and pygments); the GGUF reader (gguf, numpy) "
        "loads only where a GGUF file is read. What is left over `python -c pass` is llmctl's own modules, the "
        "store's JSON files and, for `ps`, one HTTP round trip. Without `--realtime`, wall time on a machine "
        "this shared is mostly waiting for a core (medians 3-5x these at load 10 on the 2 cores, with the same CPU "
        "times): compare CPU time and instructions then. Regenerate with "
        f"`.venv/bin/python bench/cli_startup.py --runs {runs}"
        + (f" --before {facts['before']}" if "before" in facts else "")
        + (" --realtime" if "realtime" in facts else "") + " --write docs/benchmarks.md`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--before", metavar="REV", help="also measure this git revision's src/llmctl")
    parser.add_argument("--realtime", action="store_true", help="run each measured command under chrt -f 1")
    parser.add_argument("--write", type=Path, help="replace the `## CLI start-up` section of this markdown file")
    args = parser.parse_args()
    if not Path(LLMCTL).exists():
        sys.exit(f"{LLMCTL} is not installed: run scripts/install.sh and use .venv/bin/python")
    with tempfile.TemporaryDirectory(prefix="llmctl-bench-cli-") as tmp:
        before = checkout(args.before, Path(tmp)) if args.before else None
        (Path(tmp) / "home").mkdir()
        rows, facts = run(args.runs, Path(tmp) / "home", before, args.realtime)
    if args.before:
        facts["before"] = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", args.before],
                                         capture_output=True, text=True).stdout.strip()
    out = table(rows, facts, args.runs)
    print(out)
    if args.write:
        write_section(args.write, out)  # every other section stays as it is


if __name__ == "__main__":
    main()
