"""Running the gateway in the foreground: `llmctl serve`.

`serve()` checks what can fail before anything starts (a missing engine, a busy port) so each becomes
one clear CLI message, binds the socket itself (no window for another process to take the port), writes
`$LLMCTL_HOME/run/gateway.json` (`api.gateway`, where `ps`, `status`, `load` and `run` read it) so they find
the gateway on any port, logs to stderr and `$LLMCTL_HOME/logs/serve.log`, and removes the file on the way out.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from llmctl import __version__
from llmctl.api.gateway import GatewayState, clear_state, log_path, write_state
from llmctl.errors import Conflict, EngineError, InvalidInput
from llmctl.names import is_loopback, url_for
from llmctl.server.app import create_app
from llmctl.server.gateway import GatewayOptions
from llmctl.server.protocol import protocol_class
from llmctl.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def serve(settings: Settings, options: GatewayOptions, *, on_ready: Callable[[GatewayState], None] | None = None) -> None:
    """Run the gateway until SIGINT/SIGTERM. Raises EngineError (no engine) or Conflict (port busy) first."""
    import asyncio

    import uvicorn

    from llmctl.runtime.engine import find_engine

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
                            http=protocol_class(settings.limits), timeout_keep_alive=30)
    server = _server_class()(config)
    log = logging.getLogger("llmctl.gateway")
    for problem in settings.problems:
        log.warning("%s", problem)
    if not is_loopback(options.host) and not options.api_key:
        log.warning("listening on %s without an API key: anyone who can reach this address can run, pull, push, "
                    "copy and delete models with this user's registry credentials; set --api-key (or "
                    "LLMCTL_API_KEY), or listen on 127.0.0.1", f"{options.host}:{port}")

    async def run() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            import gc
            gc.collect()
            gc.freeze()
            write_state(settings, state)
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
        clear_state(settings, state.pid)
        sock.close()
    if not server.started:
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


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
