"""File locks for the store, on flock(2).

The `filelock` package only offers exclusive locks; the store needs shared/exclusive (many writers may
ingest at once, garbage collection must exclude all of them), and a non-blocking probe that tells a live
temp file from a dead one. flock gives both and is released by the kernel when a process dies, even by
`kill -9`, so a killed command never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from llmctl.errors import Conflict


@contextmanager
def flocked(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[bool]:
    """Hold a lock on `path` (created if missing). With a timeout, yields False instead of waiting longer."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    acquired = False
    try:
        if timeout is None:
            fcntl.flock(fd, mode)
            acquired = True
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    acquired = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)
        yield acquired
    finally:
        if acquired:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_locked(path: Path) -> bool:
    """True while some process holds a lock on `path` (a writer still working on a temp file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def require(acquired: bool, what: str) -> None:
    if not acquired:
        raise Conflict(f"{what} is busy: another llmctl process holds it; try again when it finishes")
