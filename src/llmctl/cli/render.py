"""Output helpers shared by commands: consoles, JSON, sizes, ages and progress bars.

Progress is rich bars on a TTY and plain lines otherwise, so CI logs stay readable: bytes show size, rate
and ETA ("12.0 MB/48.0 MB 5.1 MB/s"), steps show a count ("12/48 steps"; plain: "step 12/48").

Importing this module costs nothing: rich (~40 ms) loads when `stdout`, `stderr` or a progress bar on a
terminal is first used, so commands that print plain text (`list`, `show`, `ps`, `--json`) never load it.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from llmctl.progress import BYTES, PERCENT, STEPS

PLAIN_EVERY_S = 2.0  # a plain progress line at most this often per task


def print_json(data: Any) -> None:
    """Machine output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def human_size(n: int | float | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def sizes(*counts: tuple[int, str]) -> list[str]:
    """`12.3 MB label` for each (bytes, label) whose bytes are not 0: the parts of a transfer's result line."""
    return [f"{human_size(n)} {label}" for n, label in counts if n]


def human_ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    delta = max(0, (now or time.time()) - ts)
    for secs, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if delta >= secs:
            k = int(delta // secs)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "just now"


@functools.cache
def _console(err: bool) -> Any:
    from rich.console import Console

    return Console(stderr=err, highlight=False, soft_wrap=True)


def __getattr__(name: str) -> Any:
    """`render.stdout` / `render.stderr`: rich consoles, made on first use."""
    if name in ("stdout", "stderr"):
        return _console(name == "stderr")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def amount(done: float, total: int | None, unit: str) -> str:
    """How far a task is, in its unit: "12.0 MB/48.0 MB", "12/48 steps", "25%"."""
    if unit == STEPS:
        return f"{int(done)}/{total} steps" if total else f"{int(done)} steps"
    if unit == PERCENT:
        return f"{100 * done / total:.0f}%" if total else f"{done:.0f}%"
    return f"{human_size(done)}/{human_size(total)}" if total else human_size(done)


@dataclass
class _Plain:
    total: int | None
    desc: str
    unit: str = BYTES
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0

    def start_line(self) -> str:
        if self.unit == BYTES:
            return f"{self.desc}{f' ({human_size(self.total)})' if self.total else ''}: started"
        return f"{self.desc}: {self.total} steps" if self.unit == STEPS and self.total else self.desc

    def progress_line(self, now: float) -> str:
        if self.unit == STEPS:
            return f"{self.desc}: step {self.done}/{self.total}" if self.total else f"{self.desc}: step {self.done}"
        if self.unit == PERCENT:
            return f"{self.desc}: {amount(self.done, self.total, PERCENT)}"
        pct = f"{100 * self.done / self.total:.0f}% " if self.total else ""
        return f"{self.desc}: {pct}{human_size(self.done)} at {human_size(self.done / max(now - self.started, 1e-6))}/s"

    def finish_line(self, message: str | None, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        if self.unit != BYTES:
            return f"{self.desc}: {message or 'done'} in {elapsed:.0f}s"
        rate = f" at {human_size(self.done / elapsed)}/s" if self.done else ""
        return f"{self.desc}: {message or 'done'}{rate}"


def _rich_columns() -> list[Any]:
    """Bar columns that read each task's unit: bytes get size and speed, steps a count."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class Amount(ProgressColumn):
        bytes_column = DownloadColumn()

        def render(self, task: Any) -> Any:
            unit = task.fields.get("unit", BYTES)
            if unit == BYTES:
                return self.bytes_column.render(task)
            return Text(amount(task.completed, int(task.total) if task.total else None, unit), style="progress.download")

    class Speed(ProgressColumn):
        speed_column = TransferSpeedColumn()

        def render(self, task: Any) -> Any:
            return self.speed_column.render(task) if task.fields.get("unit", BYTES) == BYTES else Text("")

    return [TextColumn("{task.description}"), BarColumn(), Amount(), Speed(), TimeRemainingColumn()]


class CliProgress:
    """The core's `Progress` protocol rendered for a terminal (rich) or a log (plain lines)."""

    def __init__(self, *, quiet: bool = False, console: Any = None) -> None:
        self.quiet = quiet
        self.console = console or _console(True)
        self.tty = self.console.is_terminal
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        self._totals: dict[str, int | None] = {}
        self._plain: dict[str, _Plain] = {}

    def __enter__(self) -> "CliProgress":
        if self.tty and not self.quiet:
            from rich.progress import Progress

            self._rich = Progress(*_rich_columns(), console=self.console, transient=False)
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def start(self, key: str, description: str, total: int | None, unit: str = BYTES) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            self._tasks[key] = self._rich.add_task(description, total=total, unit=unit)
            self._totals[key] = total
        else:
            self._plain[key] = _Plain(total, description, unit)
            self.console.print(self._plain[key].start_line(), markup=False, highlight=False)

    def advance(self, key: str, amount: int) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            if key in self._tasks:
                self._rich.advance(self._tasks[key], amount)
            return
        p = self._plain.get(key)
        if p is None:
            return
        p.done += amount
        now = time.monotonic()
        if now - p.last >= PLAIN_EVERY_S:
            p.last = now
            self.console.print(p.progress_line(now), markup=False, highlight=False)

    def finish(self, key: str, message: str | None = None) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            task = self._tasks.pop(key, None)
            if task is not None:
                total = self._totals.pop(key, None)
                if total:
                    self._rich.update(task, completed=total)
            return
        p = self._plain.pop(key, None)
        if p is not None:
            self.console.print(p.finish_line(message, time.monotonic()), markup=False, highlight=False)
