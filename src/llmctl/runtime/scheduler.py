"""Which engines run: load on demand, keep alive, evict least-recently-used, restart after a crash.

One llama-server child per (model digest, mode) on a free loopback port. Two names for the same digest
share an engine; embeddings get their own engine (llama-server needs `--embeddings` at start). The rules
follow Ollama's scheduler so its users meet no surprises:

- a request for a model that is loading waits for that one load (a lock per model), it never fails or
  starts a second engine;
- after its last request an engine stays for the request's `keep_alive` (default: `serve --keep-alive`):
  0 unloads as soon as the model is idle, a negative value keeps it forever (`keepalive.py` parses it,
  `expiry.py` stops engines whose time ran out);
- beyond `max_loaded` engines the least recently used idle one is stopped first; if every engine is busy
  the new load waits for one to become idle;
- an engine that dies is dropped (requests in flight fail with a clear error) and the next request for
  its model starts a fresh one;
- a model takes at most `parallel + max_queue` requests at once (its slots, then a queue, as
  OLLAMA_MAX_QUEUE bounds Ollama's); one more is refused at once with `Busy` (503), never queued unbounded.

Everything here runs on the gateway's event loop; the blocking parts (starting and stopping a process,
reading the store) go to worker threads. Names become models through the `lookup` the gateway passes in
(`api.models.get_model`): the runtime does not call up into the core API.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from llmctl.artifact.model import Model
from llmctl.errors import Busy, EngineError
from llmctl.names import short
from llmctl.runtime.expiry import Reaper, exit_reason, expiry
from llmctl.runtime.keepalive import MAX_KEEP_ALIVE, parse_keep_alive
from llmctl.settings import Settings

log = logging.getLogger("llmctl.scheduler")

GENERATE = "generate"
EMBED = "embed"
_DEFAULT: Any = object()
__all__ = ["EMBED", "GENERATE", "MAX_KEEP_ALIVE", "Lease", "Runner", "Scheduler", "SchedulerConfig", "parse_keep_alive"]
@dataclass(frozen=True)
class SchedulerConfig:
    parallel: int = 4
    keep_alive: float | None = 300.0
    max_loaded: int = 3
    ctx_size: int | None = None
    threads: int | None = None
    gpu_layers: int | None = None
    load_timeout: float = 120.0
    host: str = "127.0.0.1"
    max_queue: int = 512  # requests per model beyond its `parallel` slots (LLMCTL_MAX_QUEUE, as OLLAMA_MAX_QUEUE)


@dataclass
class Runner:
    """One running engine and the bookkeeping around it."""

    key: str
    name: str
    model: Model
    mode: str
    process: Any  # llmctl.runtime.process.EngineProcess
    load_seconds: float
    loaded_at: float
    expires_at: float | None = None  # wall clock; None = forever
    last_used: float = field(default_factory=time.monotonic)
    active: int = 0
    requests: int = 0

    @property
    def base_url(self) -> str:
        return str(self.process.base_url).rstrip("/")

    @property
    def auth_headers(self) -> dict[str, str]:
        """The engine's key, for every request the gateway sends it."""
        return dict(getattr(self.process, "auth_headers", None) or {})

    @property
    def prompt_mode(self) -> str:
        return str(getattr(self.process, "prompt_mode", "jinja"))


@dataclass
class Lease:
    """A request's hold on a runner: while held, the runner is not evicted or expired."""

    runner: Runner
    load_seconds: float
    keep_alive: float | None
    released: bool = False


class Scheduler:
    """The engines of one gateway. `lookup(name)` returns the stored model a name means (NotFound if none)."""

    def __init__(self, settings: Settings, config: SchedulerConfig, *, lookup: Callable[[str], Model],
                 engine: Any = None, on_event: Callable[..., None] | None = None) -> None:
        self.settings = settings
        self.config = config
        self._lookup = lookup
        self.engine = engine  # llmctl.runtime.engine.Engine; None: found at each start
        self.engine_kind = str(getattr(engine, "kind", "cpu"))
        self._starter = ThreadPoolExecutor(max_workers=4, thread_name_prefix="llmctl-engine-start")
        self._on_event = on_event or (lambda *a, **k: None)
        self._runners: dict[str, Runner] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loading: set[str] = set()
        self._pending: dict[str, int] = {}  # key -> requests holding or waiting for its engine
        self._models: dict[str, tuple[tuple[int, int, int], Model]] = {}
        self._idle = asyncio.Event()
        self._reaper = Reaper(lambda: self._runners.values(), self._locked, self._drop)
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._reaper.start()

    async def close(self) -> None:
        self._closing = True
        await self._reaper.close()
        runners = list(self._runners.values())
        self._runners.clear()
        await asyncio.gather(*(self._stop(r, "shutdown") for r in runners), return_exceptions=True)
        self._starter.shutdown(wait=False, cancel_futures=True)

    # -- requests -----------------------------------------------------------------------------------------
    async def resolve(self, name: str) -> Model:
        """The stored model for `name` (the bundled default installs itself); NotFound otherwise.

        Cached per name while the store's index.json is unchanged (it is replaced atomically on every tag
        change, and blobs never change under a digest), so a request costs one stat, not a store read.
        """
        stamp = self._index_stamp()
        hit = self._models.get(name)
        if hit is not None and stamp is not None and hit[0] == stamp:
            return hit[1]
        model = await asyncio.to_thread(self._lookup, name)
        if stamp is not None:
            self._models[name] = (stamp, model)
        return model

    def knows(self, name: str) -> bool:
        """Whether `name` resolved to a stored model (metrics label only such names)."""
        return name in self._models

    def _index_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = (self.settings.store_dir / "index.json").stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def acquire(self, name: str, *, keep_alive: Any = _DEFAULT, mode: str = GENERATE,
                      model: Model | None = None) -> Lease:
        """Hold a running engine for `name`, loading it first if needed. Pair with `release`."""
        ka = self.config.keep_alive if keep_alive is _DEFAULT else keep_alive
        model = model or await self.resolve(name)
        model.require_gguf(name)  # before anything is evicted to make room: a refused request changes nothing
        key = f"{model.digest}/{mode}"
        self._enqueue(key, name)
        try:
            runner, waited = await self._hold(key, name, model, mode, ka)
        except BaseException:
            self._dequeue(key)
            raise
        return Lease(runner, waited, ka)

    def _enqueue(self, key: str, name: str) -> None:
        """Count a request against its model's slots and queue; Busy (503) once both are full."""
        pending = self._pending.get(key, 0)
        bound = max(1, self.config.parallel) + max(0, self.config.max_queue)
        if pending >= bound:
            raise Busy(f"server busy, please try again: {name} already has {pending} requests running or waiting "
                       f"(--parallel {self.config.parallel} + LLMCTL_MAX_QUEUE {self.config.max_queue})")
        self._pending[key] = pending + 1

    def _dequeue(self, key: str) -> None:
        left = self._pending.get(key, 0) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)

    async def _hold(self, key: str, name: str, model: Model, mode: str, ka: float | None) -> tuple[Runner, float]:
        """The running engine for `key` (started first if needed), with one more request on it."""
        lock = self._lock(key)
        async with lock:
            runner = self._runners.get(key)
            if runner is not None and not runner.process.alive():
                await self._drop(runner, "crashed")
                runner = None
            waited = 0.0
            if runner is None:
                runner = await self._load(key, name, model, mode)
                waited = runner.load_seconds
            # no await between the lookup above and here: the reaper cannot stop it in between
            runner.active += 1
            runner.requests += 1
            runner.last_used = time.monotonic()
            runner.expires_at = expiry(ka)
        return runner, waited

    def release(self, lease: Lease) -> None:
        """End a request's hold. Idempotent; keep_alive 0 unloads as soon as the engine is idle."""
        if lease.released:
            return
        lease.released = True
        runner = lease.runner
        self._dequeue(runner.key)
        runner.active -= 1
        runner.last_used = time.monotonic()
        runner.expires_at = expiry(lease.keep_alive)
        if runner.active == 0:
            self._idle.set()
            self._reaper.wake()  # it recomputes its next deadline

    async def engine_failed(self, runner: Runner) -> str | None:
        """After an upstream error: if the engine died, drop it and say how; None if it is still alive."""
        for _ in range(20):  # a dying child may need a moment before its exit status is visible
            if not runner.process.alive():
                break
            await asyncio.sleep(0.05)
        else:
            return None
        how = exit_reason(runner.process)
        if self._runners.get(runner.key) is runner:
            await self._drop(runner, "crashed")
        return f"the engine for {runner.name} (pid {runner.process.pid}) {how}; it restarts on the next request"

    async def unload(self, name: str) -> list[Runner]:
        """Stop every engine of `name` now, idle or not (requests in flight fail). Returns what stopped."""
        model = await self.resolve(name)
        stopped = [r for r in list(self._runners.values()) if r.model.digest == model.digest]
        for runner in stopped:
            lock = self._lock(runner.key)
            async with lock:
                if self._runners.get(runner.key) is runner:
                    await self._drop(runner, "unload")
        return stopped

    def runners(self) -> list[Runner]:
        return sorted(self._runners.values(), key=lambda r: r.loaded_at)

    def processor(self, runner: Runner) -> str:
        """Ollama's PROCESSOR column: where the engine really put the weights (its planned offload)."""
        label = getattr(runner.process, "processor", None)
        if isinstance(label, str) and label:
            return label
        from llmctl.runtime.gpu import processor_label

        return processor_label(self.config.gpu_layers, _block_count(runner.model), cuda=self.engine_kind != "cpu")

    # -- internals ----------------------------------------------------------------------------------------
    async def _load(self, key: str, name: str, model: Model, mode: str) -> Runner:
        await self._make_room(key)
        self._loading.add(key)
        try:
            from llmctl.runtime.launch import EngineOptions, gpu_overrides
            from llmctl.runtime.process import EngineProcess

            extra: tuple[str, ...] = ()
            if mode == EMBED:
                extra = ("--embeddings",) + (() if _has_pooling(model) else ("--pooling", "mean"))
            c = self.config
            options = EngineOptions.for_model(model, ctx_size=c.ctx_size, parallel=c.parallel, threads=c.threads,
                                              gpu_layers=c.gpu_layers, extra_args=extra or None,
                                              **gpu_overrides(self.settings))
            log.info("loading %s (%s) for %s", name, model.id, mode)
            started = time.monotonic()
            loop = asyncio.get_running_loop()
            # die_with_parent: the kernel stops the engine if the gateway dies (even by SIGKILL); that
            # signal follows the thread that started the child, so starts run on long-lived threads.
            start = functools.partial(EngineProcess.start, self.settings, model, options, host=c.host,
                                      timeout=c.load_timeout, engine=self.engine, die_with_parent=True)
            try:
                process = await loop.run_in_executor(self._starter, start)
            except EngineError as exc:
                log.error("loading %s failed: %s", name, exc)
                raise EngineError(_first_line(str(exc)), hint=_log_hint(str(exc))) from None
            seconds = time.monotonic() - started
        finally:
            self._loading.discard(key)
        runner = Runner(key, short(self.settings, model.reference), model, mode, process, seconds, time.time())
        if self._closing:
            await asyncio.to_thread(process.stop)
            raise EngineError("the gateway is shutting down")
        self._runners[key] = runner
        log.info("loaded %s on port %s in %.2fs (pid %s, %s mode, log %s)", name, process.port, seconds,
                 process.pid, process.prompt_mode, process.log_path)
        self._on_event("loaded", runner)
        return runner

    async def _make_room(self, key: str) -> None:
        deadline = time.monotonic() + self.config.load_timeout
        while len(self._runners) + len(self._loading) >= max(1, self.config.max_loaded):
            idle = [r for r in self._runners.values() if r.active == 0]
            if idle:
                victim = min(idle, key=lambda r: r.last_used)
                log.info("evicting %s (least recently used, max-loaded %d)", victim.name, self.config.max_loaded)
                await self._drop(victim, "evicted")
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(
                    f"all {self.config.max_loaded} loaded models are busy; raise `serve --max-loaded` or retry"
                )
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=min(left, 1.0))
            except TimeoutError:
                pass

    async def _drop(self, runner: Runner, reason: str) -> None:
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        await self._stop(runner, reason)

    async def _stop(self, runner: Runner, reason: str) -> None:
        log.info("unloading %s (%s)", runner.name, reason)
        self._on_event("unloaded", runner, reason=reason)
        try:
            await asyncio.to_thread(runner.process.stop)
        except Exception as exc:  # a process that will not stop must not take the gateway down
            log.warning("stopping the engine of %s: %s", runner.name, exc)

    def _lock(self, key: str) -> asyncio.Lock:
        """The lock of one engine key: its load, its unload and its expiry take turns."""
        return self._locks.setdefault(key, asyncio.Lock())

    def _locked(self, runner: Runner) -> bool:
        """Whether a load or an unload of `runner`'s model holds its lock (the reaper leaves it alone)."""
        return self._lock(runner.key).locked()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "the engine failed"


def _log_hint(text: str) -> str | None:
    m = re.search(r"--- last lines of (.+?) ---|\(log: (.+?)\)", text)
    return f"engine log: {m.group(1) or m.group(2)}" if m else None


def _gguf_kv(model: Model) -> dict[str, str]:
    return dict(model.facts.gguf or {})


def _has_pooling(model: Model) -> bool:
    return any(k.endswith(".pooling_type") for k in _gguf_kv(model))


def _block_count(model: Model) -> int | None:
    for k, v in _gguf_kv(model).items():
        if k.endswith(".block_count"):
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
    return None
