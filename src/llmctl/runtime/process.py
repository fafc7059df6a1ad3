"""One llama-server child process: start it on a loopback port, wait until it is healthy, talk to it, stop it.

What to start (options, GPU placement, the command line) is decided in `llmctl.runtime.launch`; this module
runs it.

Every engine gets a random API key (`--api-key` through llama-server's LLAMA_API_KEY environment variable, so
it is in neither `ps` nor the log's command line) that only the process that started it knows: other local
users and browser pages cannot drive an engine's loopback port around the gateway. `/health` stays open (the
readiness probe); everything else, `/metrics` too, needs `auth_headers`.

Failures become `EngineError`s that say what happened and end with the tail of the engine's log: a busy port
(`Conflict`), a model that does not load, a process that exits or is killed, and SIGILL, which on these
machines almost always means the AMX trap (see `llmctl.runtime.cpu`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from llmctl.errors import Conflict, EngineError, LlmctlError
from llmctl.runtime import cpu
from llmctl.runtime.engine import Engine, find_engine
from llmctl.runtime.launch import EngineOptions, build_command, context_size, place
from llmctl.runtime.events import Delta, parse_event
from llmctl.runtime.prompt import CompletionRequest, prompt_mode
from llmctl.runtime.splits import engine_weights
from llmctl.settings import Settings

LOG_TAIL_LINES = 15
_BIND_FAILED = re.compile(r"couldn't bind|address already in use|failed to bind", re.I)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def read_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "model"


def _prune_logs(logs: Path, keep_seconds: float = 3 * 86400) -> None:
    now = time.time()
    for p in logs.glob("engine-*-p*.log"):
        try:
            if now - p.stat().st_mtime > keep_seconds:
                p.unlink()
        except OSError:
            pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class EngineProcess:
    engine: Engine
    model: Any
    options: EngineOptions
    host: str
    port: int
    log_path: Path
    command: list[str]
    prompt_mode: str
    proc: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.time)
    ready_seconds: float = 0.0
    placement: Any = None  # llmctl.runtime.gpu.GpuPlacement for CUDA engines, else None
    api_key: str = field(default="", repr=False)  # only this process knows it; never logged

    @property
    def auth_headers(self) -> dict[str, str]:
        """What every request to this engine but `/health` must carry."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def processor(self) -> str:
        """Ollama's PROCESSOR column for this engine: "100% GPU", "48%/52% CPU/GPU", "100% CPU"."""
        return self.placement.processor if self.placement is not None else "100% CPU"

    # -- starting -------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, settings: Settings, model: Any, options: EngineOptions | None = None, *, host: str = "127.0.0.1",
              port: int | None = None, log_path: Path | None = None, timeout: float = 120,
              engine: Engine | None = None, die_with_parent: bool = False) -> "EngineProcess":
        """Start llama-server for `model` and wait until GET /health answers 200.

        A free loopback port is chosen when `port` is None (and another one tried if it is taken meanwhile).
        `die_with_parent` makes the kernel stop the engine if the calling thread's process dies (one-shot runs).
        """
        options = options or EngineOptions()
        engine = engine or find_engine(settings)
        if port is not None and port_busy(host, port):
            raise Conflict(f"port {port} on {host} is already in use; choose another port or stop what listens there")
        attempts = 3 if port is None else 1
        for attempt in range(attempts):
            chosen = port if port is not None else free_port(host)
            try:
                return cls._start_once(settings, model, options, engine, host, chosen, log_path, timeout,
                                       die_with_parent)
            except _PortTaken:
                if attempt == attempts - 1:
                    raise Conflict(f"port {chosen} on {host} is already in use") from None
        raise AssertionError("unreachable")

    @classmethod
    def _start_once(cls, settings: Settings, model: Any, options: EngineOptions, engine: Engine, host: str,
                    port: int, log_path: Path | None, timeout: float, die_with_parent: bool) -> "EngineProcess":
        mode = prompt_mode(model)
        placement = place(model, options, engine)
        cmd = build_command(settings, model, options, engine, host, port, mode, placement=placement,
                            weights=engine_weights(settings, model))
        name = _slug(str(getattr(model, "reference", "model")))
        if log_path is None:
            settings.logs_dir.mkdir(parents=True, exist_ok=True)
            _prune_logs(settings.logs_dir)
            log_path = settings.logs_dir / f"engine-{name}-p{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        api_key = secrets.token_urlsafe(32)
        t0 = time.monotonic()
        with open(log_path, "wb") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            try:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env={**engine.environ(), **(placement.env if placement else {}),
                                             "LLAMA_API_KEY": api_key},
                                        start_new_session=True,
                                        preexec_fn=_die_with_parent if die_with_parent else None)
            except OSError as exc:
                raise EngineError(f"cannot start {engine.path}: {exc.strerror or exc}") from None
        ep = cls(engine, model, options, host, port, log_path, cmd, mode, proc, placement=placement, api_key=api_key)
        try:
            ep._wait_healthy(timeout)
        except BaseException:
            ep.stop(timeout=2)
            raise
        ep.ready_seconds = time.monotonic() - t0
        return ep

    def _wait_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/health"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                if self.proc.poll() is not None:
                    tail = read_tail(self.log_path, 200)
                    if self.proc.returncode not in (None,) and _BIND_FAILED.search(tail):
                        raise _PortTaken()
                    raise self.exit_error(starting=True) or EngineError("llama-server exited")
                try:
                    r = client.get(url)
                    if r.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"llama-server did not become ready within {timeout:.0f}s"
                        + self._tail_text()
                    )
                time.sleep(0.05)

    # -- state ----------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _tail_text(self) -> str:
        tail = read_tail(self.log_path)
        return f"\n--- last lines of {self.log_path} ---\n{tail}" if tail else f" (log: {self.log_path})"

    def exit_error(self, *, starting: bool = False) -> EngineError | None:
        """The error that explains why the engine is gone, or None while it runs."""
        rc = self.proc.poll()
        if rc is None:
            return None
        sig = cpu.signal_name(rc)
        when = "while starting" if starting else "while serving"
        if rc == -signal.SIGILL:
            msg = cpu.sigill_message()
        elif sig:
            msg = f"llama-server (pid {self.pid}) was killed by {sig} {when}"
        else:
            msg = f"llama-server (pid {self.pid}) exited with status {rc} {when}"
            tail = read_tail(self.log_path, 200)
            m = re.search(r"(failed to load model|error loading model[^\n]*|unknown argument[^\n]*|"
                          r"failed to open[^\n]*|out of memory[^\n]*|failed to apply lora[^\n]*)", tail, re.I)
            if m:
                msg += f": {m.group(1).strip()}"
            from llmctl.runtime.gpu import ROW_SPLIT_FAILURE, ROW_UNSUPPORTED

            if ROW_SPLIT_FAILURE in tail:
                return EngineError(ROW_UNSUPPORTED)
            if self.engine.kind == "cuda" and re.search(r"out of memory|cudaMalloc failed|failed to allocate", tail, re.I):
                msg += "; " + self.oom_message()
        return EngineError(msg + self._tail_text())

    def oom_message(self) -> str:
        """GPU out of memory: what was asked and what would fit now."""
        from llmctl.runtime import gpu

        plan = self.placement.plan if self.placement is not None else None
        asked = f"{plan.offloaded}/{plan.layers} layers" if plan and plan.layers else "the requested layers"
        ctx = context_size(self.model, self.options) * max(1, int(self.options.parallel))
        picked = {g.index for g in self.placement.gpus} if self.placement is not None and self.placement.gpus else None
        free = [g.free for g in gpu.query_gpus() if picked is None or g.index in picked]
        return f"out of GPU memory with {asked} at ctx {ctx}; " + gpu.oom_hint(gpu.model_shape(self.model), ctx, free)

    def check(self) -> None:
        err = self.exit_error()
        if err:
            raise err

    # -- talking --------------------------------------------------------------------------------------------
    def complete(self, req: CompletionRequest, *, timeout: float | None = None) -> Iterator[Delta]:
        """Send `req` and yield Deltas as llama-server streams them (one Delta when not streaming).

        Closing the generator early closes the connection, which makes llama-server cancel the request.
        """
        import httpx

        url = self.base_url + req.endpoint
        try:
            with httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0), headers=self.auth_headers,
                              trust_env=False) as client:
                with client.stream("POST", url, json=req.body) as r:
                    if r.status_code != 200:
                        r.read()
                        raise EngineError(f"llama-server answered {r.status_code}: {_error_text(r.text)}")
                    if not req.body.get("stream"):
                        r.read()
                        yield parse_event(req.endpoint, r.json())
                        return
                    for line in r.iter_lines():
                        if line.startswith("error:"):
                            raise EngineError(f"llama-server: {_error_text(line[6:])}")
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        obj = json.loads(data)
                        if isinstance(obj, dict) and "error" in obj:
                            raise EngineError(f"llama-server: {_error_text(data)}")
                        yield parse_event(req.endpoint, obj)
        except (httpx.TransportError, ValueError) as exc:
            raise self._lost(exc) from None

    def _lost(self, exc: Exception) -> LlmctlError:
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
        err = self.exit_error()
        if err:
            return err
        return EngineError(f"lost the connection to llama-server (pid {self.pid}): {exc}" + self._tail_text())

    # -- stopping -------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass

    def __enter__(self) -> "EngineProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PortTaken(Exception):
    pass


def _error_text(text: str) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    return str(obj)
