"""Output helpers shared by commands: consoles, JSON, tables, sizes, and progress bars.

Progress is rich bars (size, rate, ETA) on a TTY and plain lines otherwise, so CI logs stay readable.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


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


def human_ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    delta = max(0, (now or time.time()) - ts)
    for secs, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if delta >= secs:
            k = int(delta // secs)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "just now"


@dataclass
class _Plain:
    total: int | None
    desc: str
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0


class CliProgress:
    """The core's `Progress` protocol rendered for a terminal (rich) or a log (plain lines)."""

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or stderr
        self.tty = self.console.is_terminal
        self._rich = None
        self._tasks: dict[str, Any] = {}
        self._totals: dict[str, int | None] = {}
        self._plain: dict[str, _Plain] = {}

    def __enter__(self) -> "CliProgress":
        if self.tty and not self.quiet:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def start(self, key: str, description: str, total: int | None) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            self._tasks[key] = self._rich.add_task(description, total=total)
            self._totals[key] = total
        else:
            self._plain[key] = _Plain(total, description)
            size = f" ({human_size(total)})" if total else ""
            self.console.print(f"{description}{size}: started")

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
        if now - p.last >= 2.0:
            p.last = now
            elapsed = max(now - p.started, 1e-6)
            pct = f"{100 * p.done / p.total:.0f}% " if p.total else ""
            self.console.print(f"{p.desc}: {pct}{human_size(p.done)} at {human_size(p.done / elapsed)}/s")

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
            elapsed = max(time.monotonic() - p.started, 1e-6)
            rate = f" at {human_size(p.done / elapsed)}/s" if p.done else ""
            self.console.print(f"{p.desc}: {message or 'done'}{rate}")
