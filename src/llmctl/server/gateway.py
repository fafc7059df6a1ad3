"""What every route shares: the `Gateway` (scheduler, upstream client, metrics, request helpers) and the
`serve` flags that shape it (`GatewayOptions`).

One `Gateway` lives on `app.state.gateway` per app (`app.create_app` builds it in the lifespan); routes reach it
through the request (`gateway_of`), never a global, so tests and the benchmark can run many gateways in one
process. The scheduler gets its model lookup from here: the server may call the core (`llmctl.api`), the
runtime may not.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from llmctl.api.models import get_model
from llmctl.errors import LlmctlError
from llmctl.runtime.gotemplate import Limits
from llmctl.runtime.prompt import TEMPLATE
from llmctl.runtime.scheduler import GENERATE, Lease, Runner, Scheduler, SchedulerConfig, parse_keep_alive
from llmctl.server import errors, translate
from llmctl.server.enginepool import EnginePool
from llmctl.server.errors import GatewayError
from llmctl.server.metrics import Metrics
from llmctl.server.proxy import UpstreamError, UpstreamStream, make_client, open_stream
from llmctl.settings import Settings

log = logging.getLogger("llmctl.gateway")

DEFAULT = object()
T = TypeVar("T")
RENDER_WORKERS = 2  # prompt renders at once: a template at its limits must not take every thread of the loop


@dataclass(frozen=True)
class GatewayOptions:
    """`llmctl serve` flags that shape the gateway and the engines it starts."""

    host: str = "127.0.0.1"
    port: int = 11434
    parallel: int = 4
    keep_alive: float | None = 300.0
    max_loaded: int = 3
    api_key: str | None = None
    ctx_size: int | None = None
    threads: int | None = None
    gpu_layers: int | None = None
    load_timeout: float = 120.0

    def scheduler_config(self) -> SchedulerConfig:
        return SchedulerConfig(
            parallel=self.parallel, keep_alive=self.keep_alive, max_loaded=self.max_loaded, ctx_size=self.ctx_size,
            threads=self.threads, gpu_layers=self.gpu_layers, load_timeout=self.load_timeout,
        )


class Gateway:
    """What every route needs: the scheduler, the upstream client, metrics, and shared request helpers."""

    def __init__(self, settings: Settings, options: GatewayOptions, engine: Any = None) -> None:
        self.settings = settings
        self.options = options
        self.engine = engine
        config = replace(options.scheduler_config(), max_queue=settings.limits.max_queue)
        self.scheduler = Scheduler(settings, config, lookup=functools.partial(get_model, settings),
                                   engine=engine, on_event=self._on_event)
        self.metrics = Metrics(self._loaded_rows)
        self.client = make_client()
        self.engine_conns = EnginePool(max_idle=options.parallel)  # streamed requests' kept-alive connections
        self.started_at = time.time()
        self.upstream_names: dict[str, bytes] = {}
        self.template_limits = template_limits(settings)
        self._renderer = ThreadPoolExecutor(max_workers=RENDER_WORKERS, thread_name_prefix="llmctl-render")
        self.jobs_running = 0

    def _loaded_rows(self) -> list[dict[str, str]]:
        return [{"model": r.name, "id": r.model.id, "port": str(r.process.port),
                 "processor": self.scheduler.processor(r)} for r in self.scheduler.runners()]

    def _on_event(self, event: str, runner: Runner, reason: str | None = None) -> None:
        if event == "loaded":
            self.metrics.loads.labels(runner.name).inc()
            self.metrics.load_seconds.labels(runner.name).observe(runner.load_seconds)
        elif event == "unloaded":
            self.engine_conns.drop(urlsplit(runner.base_url).netloc)
            self.metrics.unloads.labels(runner.name, reason or "").inc()
            if reason == "crashed":
                self.metrics.crashes.labels(runner.name).inc()

    # -- request helpers ----------------------------------------------------------------------------------
    async def read_json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        return parse_json_object(raw)

    def keep_alive(self, value: Any) -> float | None:
        try:
            return parse_keep_alive(value, self.options.keep_alive)
        except LlmctlError as exc:
            raise GatewayError(400, exc.message, param="keep_alive") from None

    async def lease(self, name: str, *, keep_alive: Any = DEFAULT, mode: str = GENERATE) -> Lease:
        ka = self.options.keep_alive if keep_alive is DEFAULT else keep_alive
        try:
            return await self.scheduler.acquire(name, keep_alive=ka, mode=mode)
        except LlmctlError as exc:
            raise errors.from_llmctl(exc) from None

    async def upstream_error(self, lease: Lease, exc: UpstreamError) -> GatewayError:
        """An engine error as the client should see it: the engine's own 4xx, or a clear crash message."""
        if exc.status is not None and exc.status < 500:
            return GatewayError(exc.status, exc.message, type_=exc.type)
        crashed = await self.scheduler.engine_failed(lease.runner)
        if crashed:
            log.warning("%s", crashed)
            return GatewayError(502, crashed, type_="engine_error")
        log.warning("engine error from %s: %s", lease.runner.name, exc.message)
        return GatewayError(exc.status or 502, f"engine error: {exc.message}", type_="engine_error")

    async def render(self, runner: Runner, build: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`build(runner, *args, limits=..., **kwargs)`: an engine request, built off the event loop when the
        runner's model has a Go TEMPLATE (CPU work that a hostile template stretches as far as its limits
        allow, while the loop must keep answering); inline otherwise, where it is a few dict copies."""
        call = functools.partial(build, runner, *args, limits=self.template_limits, **kwargs)
        if runner.prompt_mode != TEMPLATE:
            return call()
        return await asyncio.get_running_loop().run_in_executor(self._renderer, call)

    def finish(self, route: str, model: str, code: int, kind: str | None = None) -> None:
        """Count a finished request. The model label is kept only for names that resolved to a stored model,
        so names a client makes up never grow the label set."""
        model = model if model and self.scheduler.knows(model) else ""
        self.metrics.requests.labels(route, model, str(code)).inc()
        if kind:
            self.metrics.errors.labels(route, model, kind).inc()

    def end(self, lease: Lease, route: str, name: str, code: int, kind: str | None = None) -> None:
        """A generation request is over: it leaves the in-flight gauge, its lease and is counted."""
        self.metrics.in_flight.dec()
        self.scheduler.release(lease)
        self.finish(route, name, code, kind)

    async def open_engine_stream(self, lease: Lease, route: str, name: str, endpoint: str, body: dict[str, Any],
                                 *, dialect: errors.Dialect) -> UpstreamStream | Response:
        """Count the request in flight and open its engine stream; if the engine refuses, end the request and
        return the error Response (in the client's `dialect`) to send instead."""
        self.metrics.in_flight.inc()
        try:
            return await open_stream(lease.runner.base_url + endpoint, body, lease.runner.auth_headers,
                                     pool=self.engine_conns)
        except UpstreamError as exc:
            err = await self.upstream_error(lease, exc)
            self.end(lease, route, name, err.status, "engine" if err.status >= 500 else "client")
            return errors.response(err, dialect)

    def upstream_model(self, runner: Runner) -> bytes | None:
        return self.upstream_names.get(runner.key)

    async def close(self) -> None:
        await self.scheduler.close()
        await self.client.aclose()
        self.engine_conns.close()
        self._renderer.shutdown(wait=False, cancel_futures=True)


def template_limits(settings: Settings) -> Limits:
    """The render limits of Go TEMPLATEs (LLMCTL_TEMPLATE_*), for requests and for `/api/create`'s test render."""
    lim = settings.limits
    return Limits(max_output=lim.template_max_output, max_iterations=lim.template_max_iterations,
                  max_width=lim.template_max_width, max_depth=lim.template_max_depth)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a 400. Only what JSON (RFC 8259) can say: Python's parser also takes
    `NaN` and `Infinity`, and `1e999` becomes infinity; passed on, they slip past every range check (NaN
    compares false) and break the engine's parser (a 500), so they are refused here, naming the field."""
    odd: list[bool] = []

    def constant(text: str) -> float:
        odd.append(True)
        return float(text)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            odd.append(True)
        return value

    try:
        data = json.loads(raw, parse_constant=constant, parse_float=number) if raw else None
    except ValueError as exc:
        raise GatewayError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise GatewayError(400, "request body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "request body must be a JSON object")
    if odd:
        try:
            where = _non_finite(data, "") or "a number"
        except RecursionError:
            where = "a number"
        field = where.split(".", 1)[0].split("[", 1)[0]
        raise GatewayError(400, f"{where} must be a finite number (JSON has no NaN or Infinity)",
                           param=field if field in data else None)
    return data


def _non_finite(value: Any, path: str) -> str:
    """Where in `value` the first NaN or infinity is (`options.top_p`, `messages[2].x`), "" if nowhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key)
        if found:
            return found
    return ""


def gateway_of(request: Request) -> "Gateway":
    """The Gateway this app serves; routes reach it through the request, never a global."""
    return request.app.state.gateway


async def begin_model_request(request: Request) -> tuple[float, "Gateway", dict[str, Any], str]:
    """What every model route does first: start the clock, read the JSON body, name the model it asks for."""
    started = time.monotonic()
    gw = gateway_of(request)
    body = await gw.read_json(request)
    name = request.state.model = translate.model_name(body)
    return started, gw, body, name
