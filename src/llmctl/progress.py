"""Progress reporting from the core without printing.

Long operations (blob ingest, push, pull, builds) take a `Progress` callback. The CLI turns it into rich
bars on a TTY and plain lines elsewhere (`llmctl.cli.render`); library users pass their own or nothing.

A task counts bytes (a transfer: sizes and rates are shown), steps (a build: "12/48 steps", never a size)
or percent (a build tool that only reports percentages); `start` says which.
"""

from __future__ import annotations

from typing import Protocol

BYTES = "bytes"
STEPS = "steps"
PERCENT = "percent"
UNITS = (BYTES, STEPS, PERCENT)


class Progress(Protocol):
    def start(self, key: str, description: str, total: int | None, unit: str = BYTES) -> None: ...

    def advance(self, key: str, amount: int) -> None: ...

    def finish(self, key: str, message: str | None = None) -> None: ...


class NullProgress:
    """The progress sink for library calls and --quiet."""

    def start(self, key: str, description: str, total: int | None, unit: str = BYTES) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def finish(self, key: str, message: str | None = None) -> None:
        pass
