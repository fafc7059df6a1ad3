"""What push and pull share: parallel blob transfers that stop together, progress, and disk errors.

Transfers run on a few threads (hashing and socket I/O release the GIL). The first failure, or
Ctrl-C in the main thread, sets one `threading.Event` that every transfer checks between chunks, so all
of them stop within a chunk, close their partial files (kept for resume) and the first error is raised.
"""

from __future__ import annotations

import errno
import threading
from typing import Callable, TypeVar

from llmctl.errors import LlmctlError
from llmctl.progress import NullProgress, Progress

T = TypeVar("T")
TOTAL_KEY = "total"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Cancelled(Exception):
    """Raised inside a transfer thread when another transfer failed or the user pressed Ctrl-C."""


class Tracker:
    """Per-blob progress plus one total bar; counts the bytes that really crossed the network."""

    def __init__(self, progress: Progress | None, verb: str) -> None:
        self.progress = progress or NullProgress()
        self.verb = verb
        self.cancel = threading.Event()
        self.transferred = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def start_total(self, total: int, count: int) -> None:
        self.progress.start(TOTAL_KEY, f"{self.verb} {count} blob{'s' if count != 1 else ''}", total)

    def start(self, digest: str, size: int, done: int = 0) -> str:
        key = digest
        self.progress.start(key, f"{self.verb} {digest[7:19]}", size)
        if done:
            self.progress.advance(key, done)
            self.progress.advance(TOTAL_KEY, done)
        return key

    def advance(self, key: str, n: int) -> None:
        with self._lock:
            self.transferred += n
        self.progress.advance(key, n)
        self.progress.advance(TOTAL_KEY, n)

    def skip(self, n: int) -> None:
        """Bytes that needed no transfer (already there, or mounted): they complete the total only."""
        self.progress.advance(TOTAL_KEY, n)

    def rewind(self, key: str, n: int) -> None:
        """A transfer started over: take back what it had counted in the total."""
        if n:
            self.progress.advance(TOTAL_KEY, -n)
            self.progress.advance(key, -n)

    def finish(self, key: str, message: str | None = None) -> None:
        self.progress.finish(key, message)

    def finish_total(self, message: str | None = None) -> None:
        self.progress.finish(TOTAL_KEY, message)


def run_parallel(tasks: list[Callable[[], T]], concurrency: int, tracker: Tracker) -> list[T]:
    """Run tasks on `concurrency` threads, results in task order; on the first error or Ctrl-C stop them all
    and raise it (a real error rather than the `Cancelled` it caused in the others).

    Plain threads rather than `concurrent.futures`: that package imports `logging` (19 M instructions, ~5 ms
    of every push and pull) for a queue this small."""
    if not tasks:
        return []
    results: list[T | None] = [None] * len(tasks)
    errors: list[BaseException] = []
    lock = threading.Lock()
    queue = iter(range(len(tasks)))

    def work() -> None:
        while True:
            with lock:
                i = None if errors else next(queue, None)  # after a failure, queued tasks never start
            if i is None:
                return
            try:
                results[i] = tasks[i]()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                with lock:
                    errors.append(exc)
                tracker.cancel.set()
                return

    threads = [threading.Thread(target=work, name=f"llmctl-xfer-{n}", daemon=True)
               for n in range(max(1, min(concurrency, len(tasks))))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        tracker.cancel.set()
        for t in threads:
            t.join()
        raise
    if errors:
        real = [e for e in errors if not isinstance(e, Cancelled)]
        raise (real or errors)[0]
    return results  # type: ignore[return-value]


def disk_error(exc: OSError, where: str) -> LlmctlError:
    """ENOSPC and friends as one line; other OS errors keep their own text."""
    if exc.errno in DISK_FULL:
        return LlmctlError(f"disk full while writing {where}: {exc.strerror}",
                           hint="free some space and run the same command again; it resumes where it stopped")
    return LlmctlError(f"cannot write {where}: {exc.strerror or exc}")
