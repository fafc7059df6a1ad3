"""Talking to a running gateway: what `ps`, `load`, `unload`, `status` and `logs` do.

The gateway is found through `$LLMCTL_HOME/run/gateway.json` (written by `llmctl serve`, read by
`api.gateway`), else at `LLMCTL_HOST`. These calls go through `api.client.Client` and the same public HTTP
API any client uses (Ollama's `/api/ps`, a `/api/generate` without prompt to load, with `keep_alive: 0` to
unload), so they work against any gateway, local or not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from llmctl.api.client import Client
from llmctl.api.gateway import engine_logs, log_path, read_state
from llmctl.errors import LlmctlError, NotFound
from llmctl.settings import Settings

__all__ = ["Client", "LoadedModel", "follow", "load", "log_files", "log_for", "ps", "status", "tail", "unload"]


@dataclass(frozen=True)
class LoadedModel:
    """One row of `llmctl ps`."""

    name: str
    id: str
    size: int
    processor: str
    expires_at: str
    forever: bool
    port: int | None
    pid: int | None
    mode: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "size": self.size, "processor": self.processor,
                "until": None if self.forever else self.expires_at, "port": self.port, "pid": self.pid,
                "mode": self.mode}


def ps(client: Client) -> list[LoadedModel]:
    rows = client.request("GET", "/api/ps").get("models", [])
    return [LoadedModel(
        name=r.get("name", ""), id=r.get("id") or r.get("digest", "")[:12], size=int(r.get("size") or 0),
        processor=r.get("processor") or ("100% GPU" if r.get("size_vram") else "100% CPU"),
        expires_at=r.get("expires_at", ""), forever=bool(r.get("keep_alive_forever")) or r.get("expires_at", "").startswith("9999"),
        port=r.get("port"), pid=r.get("pid"), mode=r.get("mode", "generate"),
    ) for r in rows]


def load(client: Client, name: str, keep_alive: str | None = None) -> dict[str, Any]:
    """Load `name` now (Ollama: `/api/generate` with no prompt). Returns the gateway's answer."""
    body: dict[str, Any] = {"model": name}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return client.request("POST", "/api/generate", body)


def unload(client: Client, name: str) -> bool:
    """Unload `name` (Ollama: `keep_alive: 0`); False if it was not loaded."""
    answer = client.request("POST", "/api/generate", {"model": name, "keep_alive": 0})
    return bool(answer.get("unloaded"))


def status(settings: Settings, client: Client) -> dict[str, Any]:
    """Health, version, loaded models and the local daemon record (if this home runs the gateway)."""
    health = client.request("GET", "/health")
    version = client.request("GET", "/api/version").get("version")
    loaded = [m.to_json() for m in ps(client)]
    state = read_state(settings)
    out: dict[str, Any] = {"url": client.url, "status": health.get("status"), "version": version,
                           "uptime": health.get("uptime"), "loaded": loaded}
    if state is not None and client.url == state.url:
        out.update(pid=state.pid, started_at=state.started_at, engine=state.engine,
                   engine_version=state.engine_version, engine_kind=state.engine_kind, log=state.log_path)
    return out


def log_files(settings: Settings) -> list[Path]:
    """The gateway log first, then engine logs, newest first."""
    gateway = log_path(settings)
    engines = sorted(settings.logs_dir.glob("engine-*.log"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if settings.logs_dir.is_dir() else []
    return ([gateway] if gateway.exists() else []) + engines


def log_for(settings: Settings, name: str | None, client: Client | None = None) -> Path:
    """The gateway log, or the log of the engine serving `name` (the running one if the gateway says so,
    else the newest); NotFound if there is none."""
    path: Path | None = None
    if name is None:
        path = log_path(settings)
    else:
        if client is not None:
            try:
                rows = client.request("GET", "/api/ps").get("models", [])
            except LlmctlError:
                rows = []
            for r in rows:
                if name in (r.get("name"), r.get("id")) and r.get("log"):
                    path = Path(r["log"])
                    break
        if path is None:
            logs = engine_logs(settings, name)
            path = logs[0] if logs else settings.logs_dir / f"engine-{name}.log"
    if path is None or not path.exists():
        what = "the gateway" if name is None else f"the engine of {name}"
        have = ", ".join(p.name for p in log_files(settings)) or "none"
        raise NotFound(f"no log for {what} in {settings.logs_dir} (logs there: {have})")
    return path


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a text file without reading all of it."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        end = f.tell()
        block, data = 8192, b""
        while end > 0 and data.count(b"\n") <= lines:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start) + data
            end = start
    text = data.decode("utf-8", "replace").splitlines()
    return text[-lines:] if lines > 0 else []


def follow(path: Path, *, poll: float = 0.25) -> Iterator[str]:
    """Yield lines appended to `path` from now on (`logs -f`); survives the file being recreated."""
    f = open(path, "rb")
    f.seek(0, 2)
    inode = path.stat().st_ino
    try:
        while True:
            line = f.readline()
            if line:
                yield line.decode("utf-8", "replace").rstrip("\n")
                continue
            time.sleep(poll)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_ino != inode or st.st_size < f.tell():
                f.close()
                f = open(path, "rb")
                inode = st.st_ino
    finally:
        f.close()
