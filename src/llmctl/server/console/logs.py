"""An engine's log, by model name, in pieces a page can follow (`tail -f` over HTTP).

A client names a model, never a file: the log is the running engine's own, else the newest one an engine
of that model left (`api.gateway.engine_logs`, e.g. after a crash). A first read returns the last
`FIRST_READ` bytes; a client passes the `offset` it got back to read only what was appended since (and is
told `reset` when the file was replaced, by an engine restart, or shrank). Reads end at a line break, so a
line is never cut in two, and the paths of this machine in the text (llama-server logs the weights file it
loads) are shown relative to `$LLMCTL_HOME` and `~`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.api.gateway import engine_logs
from llmctl.errors import NotFound
from llmctl.server.gateway import Gateway

FIRST_READ = 32 * 1024
MAX_READ = 256 * 1024
# an absolute path of two or more parts that none of the known roots covered (the engine binary, a temp dir)
OTHER_PATH = re.compile(r"(?<![\w:/.~$-])/(?:[\w.+@-]+/)+([\w.+@-]+)")


@dataclass(frozen=True)
class LogPiece:
    model: str
    log: str  # the file's name only (engine-<model>-p<port>.log), never its folder
    offset: int
    text: str
    reset: bool

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "log": self.log, "offset": self.offset, "text": self.text, "reset": self.reset}


def engine_log(gw: Gateway, name: str) -> Path:
    """The log of the engine serving `name` now, else the newest one of that model; NotFound if none."""
    for runner in gw.scheduler.runners():
        path = getattr(runner.process, "log_path", None)
        if runner.name == name and path is not None and Path(path).exists():
            return Path(path)
    found = engine_logs(gw.settings, name)
    if not found:
        raise NotFound(f"no engine log for {name!r}: it has not run on this gateway")
    return found[0]


def read(gw: Gateway, name: str, after: int | None) -> LogPiece:
    path = engine_log(gw, name)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        reset = after is None or after > size
        start = max(0, size - FIRST_READ) if reset else after
        f.seek(start)
        data = f.read(min(size - start, MAX_READ))
    if reset and start > 0:  # began mid-file: drop the partial first line
        cut = data.find(b"\n")
        data, start = (data[cut + 1:], start + cut + 1) if cut >= 0 else (b"", size)
    end = data.rfind(b"\n")
    data = data[:end + 1] if end >= 0 else b""  # only whole lines; the rest comes with the next read
    text = redact(data.decode("utf-8", "replace"), gw)
    return LogPiece(name, path.name, start + len(data), text, reset)


def redact(text: str, gw: Gateway) -> str:
    """This machine's paths as `$LLMCTL_HOME/...`, `~/...` or `…/NAME`: the page shows what happened, not where."""
    store = gw.settings.store_dir
    for path, alias in ((store.resolve(), "$LLMCTL_HOME/store"), (store, "$LLMCTL_HOME/store"),
                        (gw.settings.home, "$LLMCTL_HOME"), (Path.home(), "~")):
        if str(path) not in ("/", ""):
            text = text.replace(str(path) + "/", alias + "/")
    return OTHER_PATH.sub(r"…/\1", text)
