"""Where a running `llmctl serve` is, and what it leaves for others: `$LLMCTL_HOME/run/gateway.json` and its logs.

The server (`llmctl.server.daemon`) writes the state file once it listens and removes it on the way out;
`ps`, `status`, `load`, `logs` and `run` read it here, so they find the gateway of this LLMCTL_HOME on any
port, and fall back to `LLMCTL_HOST`. The file's format has this one home, on the core's side of the layers:
the server may import the core, the core never imports the server.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from llmctl.names import parse_host, parse_name
from llmctl.settings import Settings

STATE_FILE = "gateway.json"
LOG_FILE = "serve.log"


@dataclass(frozen=True)
class GatewayState:
    pid: int
    host: str
    port: int
    url: str
    started_at: float
    version: str
    log_path: str
    engine: str | None = None
    engine_version: str | None = None
    engine_kind: str | None = None


def state_path(settings: Settings) -> Path:
    return settings.run_dir / STATE_FILE


def log_path(settings: Settings) -> Path:
    """The gateway's own log (`serve.log`); engines log beside it (`engine_logs`)."""
    return settings.logs_dir / LOG_FILE


def engine_logs(settings: Settings, name: str) -> list[Path]:
    """Engine logs of model `name`, newest first. The engine layer names them
    `engine-<reference, unsafe characters as _>-p<port>.log`, one per start, so a crash's log survives
    the restart that follows it."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(parse_name(settings, name))).strip("_")[:80]
    if not settings.logs_dir.is_dir():
        return []
    found = [p for p in settings.logs_dir.glob(f"engine-{slug}-p*.log") if p.name[len(f"engine-{slug}-p"):-4].isdigit()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def read_state(settings: Settings) -> GatewayState | None:
    """The running gateway of this LLMCTL_HOME, or None (no file, unreadable, or its process is gone)."""
    try:
        data = json.loads(state_path(settings).read_text())
        state = GatewayState(**data)
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None


def write_state(settings: Settings, state: GatewayState) -> None:
    """Publish `state` atomically (temp file + rename): a reader sees the old file or the new one."""
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def clear_state(settings: Settings, pid: int) -> None:
    """Remove the state file only if it is still `pid`'s (a second gateway may have replaced it)."""
    path = state_path(settings)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def gateway_url(settings: Settings) -> str:
    """Where clients should go: the running gateway's URL, else LLMCTL_HOST's."""
    state = read_state(settings)
    if state is not None:
        return state.url.rstrip("/")
    return parse_host(settings.host).url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
