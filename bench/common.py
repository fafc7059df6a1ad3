"""What the benchmarks share: timing a command in a fresh process, a docker-registry with a request log,
instruction counts, and writing a section of docs/benchmarks.md.

`measure()` runs a command under a small wrapper process and returns its wall time, peak RSS
(`getrusage(RUSAGE_CHILDREN)`), CPU time and its start and end as Unix times (to place it in the registry's
log). `Registry` is Debian's docker-registry (distribution 2.8) on a free loopback port; `fresh()` restarts it
on empty storage, and with `log=True` it writes distribution's JSON request log, which the benchmarks read
their phases and resumes from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PY = sys.executable
WRAPPER = (
    "import resource, subprocess, sys, time, json\n"
    "t0 = time.time()\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "dt = time.perf_counter() - t\n"
    "t1 = time.time()\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': p.returncode, 's': dt, 'rss_kb': ru.ru_maxrss, 'cpu': ru.ru_utime + ru.ru_stime,"
    " 'start': t0, 'end': t1, 'out': p.stdout.decode()[-4000:],"
    " 'err': p.stderr.decode()[-4000:]}))\n"
)


@dataclass
class Sample:
    seconds: float
    rss_kb: int
    cpu: float = 0.0
    out: str = ""
    err: str = ""
    start: float = 0.0  # Unix time the command was started and ended (to place it in the registry's log)
    end: float = 0.0


def realtime(cmd: list[str], on: bool) -> list[str]:
    """`cmd` under SCHED_FIFO (`chrt -f 1`, root) when `on`: on a shared machine other work cannot preempt it,
    so a measurement reads what the command costs, not the load (chrt execs the command: same process)."""
    return ["chrt", "-f", "1", *cmd] if on else cmd


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, *, rt: bool = False) -> Sample:
    proc = subprocess.run([PY, "-c", WRAPPER, *realtime(cmd, rt)], capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"wrapper failed: {proc.stderr}")
    data = json.loads(proc.stdout)
    if data["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {data['rc']}: {data['err'][-2000:]}")
    return Sample(data["s"], data["rss_kb"], data["cpu"], data["out"], data["err"], data["start"], data["end"])


def precompile() -> None:
    """Byte-compile llmctl before timing it. An installed llmctl has its .pyc files; an editable one run with
    PYTHONDONTWRITEBYTECODE=1 (as this workspace's shells set it) compiles every module at every start,
    which would add ~30% to each command's start-up and measure that instead of llmctl."""
    import llmctl

    subprocess.run([PY, "-m", "compileall", "-q", str(Path(llmctl.__file__).parent)], check=True,
                   stdout=subprocess.DEVNULL)


def instructions(cmd: list[str], env: dict[str, str] | None = None) -> int | None:
    """Instructions a command executes (valgrind's callgrind), or None without valgrind: start-up costs
    compared this way do not move with the load other work puts on the machine."""
    if shutil.which("valgrind") is None:
        return None
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd], env=env,
                          capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", proc.stderr)
    return int(m.group(1)) if m and proc.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry with its own storage; `fresh()` restarts it empty so a push uploads everything.

    With `log=True` it writes distribution's request log (JSON lines: method, URI, status, bytes written,
    duration, end time) to `log_path`: the other benchmarks read their phases and resumes from it."""

    def __init__(self, work: Path, *, log: bool = False, rt: bool = False) -> None:
        self.work = work
        self.rt = rt  # the registry, and the commands measured against it, under SCHED_FIFO
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.generation = 0
        self.log = log
        self.log_path = work / "registry.log"

    @property
    def storage(self) -> Path:
        return self.work / f"storage-{self.generation}"

    def cpu_seconds(self) -> float:
        """CPU time the registry process has used so far (user + system)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def requests(self, since: int = 0) -> list[dict]:
        """The request log from byte offset `since` (`log_offset()` before a command): one dict per request."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "response completed" or "http.response.status" in entry:
                out.append(entry)
        return out

    def requests_once(self, since: int, done, timeout: float = 10.0) -> list[dict]:
        """`requests(since)` once `done(entries)` holds: the registry logs a request just after answering it,
        so the line can trail the client's exit by a moment."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.requests(since)
            if done(entries) or time.monotonic() > deadline:
                return entries
            time.sleep(0.01)

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fresh(self) -> "Registry":
        self.stop()
        self.generation += 1
        storage = self.work / f"storage-{self.generation}"
        cfg = self.work / "config.yml"
        level = "info\n  formatter: json" if self.log else "error"
        cfg.write_text(
            f"version: 0.1\nlog:\n  level: {level}\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {storage}\nhttp:\n  addr: {self.host}\n  secret: bench\n"
        )
        out = open(self.log_path, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(realtime(["docker-registry", "serve", str(cfg)], self.rt), stdout=out, stderr=out)
        if self.log:
            out.close()
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        for old in self.work.glob("storage-*"):
            shutil.rmtree(old, ignore_errors=True)


def llmctl(*args: str) -> list[str]:
    """The `llmctl` console script, as users run it (`python -m llmctl` adds runpy's few ms)."""
    script = Path(PY).with_name("llmctl")
    return [str(script), *args] if script.exists() else [PY, "-m", "llmctl", *args]


def go_duration(text: str) -> float:
    """Go's time.Duration text ("786.543µs", "12.4ms", "1.5s", "1m2.5s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(h|ms|µs|us|ns|m|s)", text))


def request_span(entry: dict) -> tuple[float, float]:
    """(start, end) of a request in Unix time: the log line's time is its end, minus its duration."""
    head, _, frac = entry.get("time", "").rstrip("Z").partition(".")
    end = datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))
    return end - go_duration(entry.get("http.response.duration", "0s")), end


def write_section(path: Path, section: str) -> None:
    """Replace the section of a markdown file whose heading is `section`'s first line (`## Transfer`) with
    `section`, or append it; every other section stays as it is."""
    section = section.rstrip("\n") + "\n"
    title = section.split("\n", 1)[0].strip()
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
