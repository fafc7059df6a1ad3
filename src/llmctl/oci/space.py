"""Free disk before a write: pulls and blob uploads are checked against `statvfs` before the first byte.

A pull that fills the disk halfway fails late and leaves the machine without space for anything else (the
gateway's logs, other users); checking the bytes still to come against the free space, minus a reserve the
operator keeps for everything else (LLMCTL_DISK_RESERVE), turns that into one clear error up front. A blob
cap (LLMCTL_MAX_BLOB_SIZE, 0 = none) bounds what one upload or pulled layer may be, whatever the disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmctl.errors import InsufficientSpace


@dataclass(frozen=True)
class SpaceRule:
    reserve: int = 0  # bytes that must stay free on the store's filesystem
    max_blob: int = 0  # the largest single blob; 0 = no cap

    def check(self, directory: Path, need: int, *, largest: int = 0, what: str = "this") -> None:
        """InsufficientSpace unless `need` more bytes (the largest blob `largest`) fit under the rules."""
        if self.max_blob and largest > self.max_blob:
            raise InsufficientSpace(f"{what} has a blob of {_size(largest)}, more than the {_size(self.max_blob)} "
                                    "allowed (LLMCTL_MAX_BLOB_SIZE)")
        free = free_bytes(directory)
        if need > 0 and need > free - self.reserve:
            raise InsufficientSpace(
                f"not enough disk space for {what}: needs {_size(need)}, {_size(free)} free on {directory} "
                f"and {_size(self.reserve)} must stay free (LLMCTL_DISK_RESERVE)",
                hint="free some space (`llmctl rm` models you no longer need) or lower LLMCTL_DISK_RESERVE")


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of `directory` (or its nearest parent)."""
    path = Path(directory)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
