"""Running the gateway in the foreground, and finding a running one.

`serve()` checks what can fail before anything starts (a missing engine, a busy port) so each becomes
one clear CLI message, binds the socket itself (no window for another process to take the port), writes
`$LLMCTL_HOME/run/gateway.json` so `ps`, `status`, `load` and `run` find the gateway on any port, logs to
stderr and `$LLMCTL_HOME/logs/serve.log`, and removes the file on the way out.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from llmctl import __version__
from llmctl.errors import Conflict, InvalidInput
from llmctl.settings import Settings

STATE_FILE = "gateway.json"
LOG_FILE = "serve.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    return settings.logs_dir / LOG_FILE


def engine_logs(settings: Settings, name: str) -> list[Path]:
    """Engine logs of model `name`, newest first. The engine layer names them
    `engine-<reference, unsafe characters as _>-p<port>.log`, one per start, so a crash's log survives
    the restart that follows it."""
    import re

    from llmctl.api.models import parse_name

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(parse_name(settings, name))).strip("_")[:80]
    if not settings.logs_dir.is_dir():
        return []
    found = [p for p in settings.logs_dir.glob(f"engine-{slug}-p*.log") if p.name[len(f"engine-{slug}-p"):-4].isdigit()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def split_host(hostport: str, default_port: int = 11434) -> tuple[str, int]:
    """`LLMCTL_HOST` forms: "host:port", "host", ":port", "http://host:port", "[::1]:port"."""
    text = hostport.strip()
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.rstrip("/")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    try:
        return host or "127.0.0.1", int(port) if port else default_port
    except ValueError:
        raise InvalidInput(f"not a host:port: {hostport!r}") from None


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def read_state(settings: Settings) -> GatewayState | None:
    """The running gateway of this LLMCTL_HOME, or None (no file, unreadable, or its process is gone)."""
    try:
        data = json.loads(state_path(settings).read_text())
        state = GatewayState(**data)
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None


def gateway_url(settings: Settings) -> str:
    """Where clients should go: the running gateway's URL, else LLMCTL_HOST."""
    state = read_state(settings)
    if state is not None:
        return state.url
    host, port = split_host(settings.host)
    return url_for(host, port)


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now so a busy port is one clear error, not a uvicorn traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"port {port} on {host} is already in use",
                           hint="another `llmctl serve` or Ollama? pick another with --port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        raise
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def setup_logging(settings: Settings, *, verbose: bool = False) -> Path:
    path = log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8"), logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(fmt)
    for name in ("llmctl", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(logging.DEBUG if verbose or settings.debug else logging.INFO)
        lg.propagate = False
    return path


def serve(settings: Settings, options: Any, *, on_ready: Callable[[GatewayState], None] | None = None) -> None:
    """Run the gateway until SIGINT/SIGTERM. Raises EngineError (no engine) or Conflict (port busy) first."""
    import asyncio

    import uvicorn

    from llmctl.runtime.engine import find_engine
    from llmctl.runtime.gateway.app import create_app

    engine = find_engine(settings)
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]
    logfile = setup_logging(settings)
    state = GatewayState(
        pid=os.getpid(), host=options.host, port=port, url=url_for(options.host, port), started_at=time.time(),
        version=__version__, log_path=str(logfile), engine=str(getattr(engine, "path", "")),
        engine_version=getattr(engine, "version", None), engine_kind=getattr(engine, "kind", None),
    )
    app = create_app(settings, options, engine=engine)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                            http="httptools" if _has("httptools") else "h11", timeout_keep_alive=30)
    server = _server_class()(config)
    log = logging.getLogger("llmctl.gateway")

    async def run() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            _write_state(settings, state)
            log.info("llmctl %s gateway on %s (engine %s %s, %s); logs in %s", __version__, state.url,
                     state.engine, state.engine_version or "", state.engine_kind, settings.logs_dir)
            if on_ready:
                on_ready(state)
        try:
            await task
        except SystemExit:  # uvicorn's way to say the app's startup failed; reported below
            pass

    try:
        if _has("uvloop"):
            import uvloop

            uvloop.run(run())
        else:
            asyncio.run(run())
    finally:
        _clear_state(settings, state.pid)
        sock.close()
    if not server.started:
        from llmctl.errors import EngineError

        raise EngineError(f"the gateway did not start; see {logfile}")


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """SIGINT/SIGTERM stop the gateway gracefully and that is a normal exit (status 0): uvicorn would
        re-raise the signal after shutting down, turning every Ctrl-C into "interrupted" (130)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            import signal

            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server


def _write_state(settings: Settings, state: GatewayState) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def _clear_state(settings: Settings, pid: int) -> None:
    """Remove the state file only if it is still ours (a second gateway may have replaced it)."""
    path = state_path(settings)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
