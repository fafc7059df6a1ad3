"""Keep-alive expiry: idle engines whose keep_alive ran out are stopped, engines that died while idle dropped.

`keepalive.py` turns what a client says into seconds; this is what the scheduler does with them. One task
on the gateway's event loop sleeps until the next deadline (at most a second, to notice a dead engine soon)
or until a release wakes it, as Ollama's scheduler expires its runners. It never touches an engine in use,
nor one whose lock is held (a load or an unload of that model is in progress): the scheduler says which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

if TYPE_CHECKING:
    from llmctl.runtime.scheduler import Runner

log = logging.getLogger("llmctl.scheduler")
MAX_SLEEP = 1.0


def expiry(keep_alive: float | None) -> float | None:
    """When an idle engine stops (wall clock), for a keep_alive in seconds; None: never."""
    return None if keep_alive is None else time.time() + keep_alive


def exit_reason(process: Any) -> str:
    """How an engine's process ended, for a log line or an error: its signal, else its exit status."""
    from llmctl.runtime.cpu import signal_name

    code = process.proc.poll()
    sig = signal_name(code)
    if sig:
        return f"was killed by {sig}"
    return f"exited with status {code}" if code is not None else "stopped answering"


class Reaper:
    """The expiry task of one scheduler: `runners()` are its engines, `locked(runner)` whether a load or an
    unload holds that runner's lock, `drop(runner, reason)` stops one and forgets it."""

    def __init__(self, runners: Callable[[], Iterable[Runner]], locked: Callable[[Runner], bool],
                 drop: Callable[[Runner, str], Awaitable[None]]) -> None:
        self._runners, self._locked, self._drop = runners, locked, drop
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="llmctl-keepalive")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def wake(self) -> None:
        """An engine became idle: its deadline may now be the next one."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            now = time.time()
            due = [r.expires_at - now for r in self._runners() if r.active == 0 and r.expires_at is not None]
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min([MAX_SLEEP, *due])))
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.once()
            except Exception:  # keep the timer alive whatever one pass meets
                log.exception("keep-alive pass failed")

    async def once(self) -> None:
        """One pass: drop idle engines that died, stop idle ones past their deadline."""
        now = time.time()
        for runner in list(self._runners()):
            if runner.active or self._locked(runner):
                continue
            if not runner.process.alive():
                log.warning("the engine of %s (pid %s) %s", runner.name, runner.process.pid, exit_reason(runner.process))
                await self._drop(runner, "crashed")
            elif runner.expires_at is not None and runner.expires_at <= now:
                await self._drop(runner, "expired")
