"""The gateway's FastAPI app: one factory, all state on `app.state.gateway`, nothing global.

`create_app(settings, options)` returns an app whose lifespan owns a `Scheduler` (the engines), one pooled
`httpx.AsyncClient` (to the engines) and a `Metrics` registry. Routes live in `openai_routes`,
`ollama_routes` (+ `ollama_legacy`) and, for Ollama's model management, `manage_routes` and
`create_routes`; all reach the shared pieces through `Gateway`, so tests and the benchmark can build as
many independent gateways in one process as they like.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from llmctl import __version__
from llmctl.errors import LlmctlError
from llmctl.runtime.gateway import errors, translate
from llmctl.runtime.gateway.errors import GatewayError
from llmctl.runtime.gateway.metrics import CONTENT_TYPE, Metrics
from llmctl.runtime.gateway.proxy import UpstreamError, UpstreamStream, make_client, open_stream
from llmctl.runtime.scheduler import GENERATE, Lease, Runner, Scheduler, SchedulerConfig, parse_keep_alive
from llmctl.settings import Settings

log = logging.getLogger("llmctl.gateway")

DEFAULT = object()
OPEN_PATHS = frozenset({"/", "/health", "/api/version"})


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
        self.scheduler = Scheduler(settings, options.scheduler_config(), engine=engine, on_event=self._on_event)
        self.metrics = Metrics(self._loaded_rows)
        self.client = make_client()
        self.started_at = time.time()
        self.upstream_names: dict[str, bytes] = {}

    def _loaded_rows(self) -> list[dict[str, str]]:
        return [{"model": r.name, "id": r.model.id, "port": str(r.process.port),
                 "processor": self.scheduler.processor(r)} for r in self.scheduler.runners()]

    def _on_event(self, event: str, runner: Runner, reason: str | None = None) -> None:
        if event == "loaded":
            self.metrics.loads.labels(runner.name).inc()
            self.metrics.load_seconds.labels(runner.name).observe(runner.load_seconds)
        elif event == "unloaded":
            self.metrics.unloads.labels(runner.name, reason or "").inc()
            if reason == "crashed":
                self.metrics.crashes.labels(runner.name).inc()

    # -- request helpers ----------------------------------------------------------------------------------
    async def read_json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else None
        except ValueError as exc:
            raise GatewayError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise GatewayError(400, "request body must be a JSON object")
        return data

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

    def finish(self, route: str, model: str, code: int, kind: str | None = None) -> None:
        self.metrics.requests.labels(route, model, str(code)).inc()
        if kind:
            self.metrics.errors.labels(route, model, kind).inc()

    def end(self, lease: Lease, route: str, name: str, code: int, kind: str | None = None) -> None:
        """A generation request is over: it leaves the in-flight gauge, its lease and is counted."""
        self.metrics.in_flight.dec()
        self.scheduler.release(lease)
        self.finish(route, name, code, kind)

    async def open_engine_stream(self, lease: Lease, route: str, name: str, endpoint: str, body: dict[str, Any],
                                 *, openai: bool) -> UpstreamStream | Response:
        """Count the request in flight and open its engine stream; if the engine refuses, end the request and
        return the error Response (OpenAI's or Ollama's shape) to send instead."""
        self.metrics.in_flight.inc()
        try:
            return await open_stream(lease.runner.base_url + endpoint, body)
        except UpstreamError as exc:
            err = await self.upstream_error(lease, exc)
            self.end(lease, route, name, err.status, "engine" if err.status >= 500 else "client")
            return errors.response(err, openai)

    def upstream_model(self, runner: Runner) -> bytes | None:
        return self.upstream_names.get(runner.key)

    async def close(self) -> None:
        await self.scheduler.close()
        await self.client.aclose()


class ApiKeyMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it would buffer and break disconnect detection on streams)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            await self.app(scope, receive, send)
            return
        openai = scope["path"].startswith("/v1/")
        err = GatewayError(401, "missing or wrong API key (send `Authorization: Bearer KEY`)",
                           code="invalid_api_key")
        await errors.response(err, openai)(scope, receive, send)


def create_app(settings: Settings, options: GatewayOptions, *, engine: Any = None) -> FastAPI:
    """A gateway app. `engine` is the discovered llama-server (for /api/version and PROCESSOR)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = Gateway(settings, options, engine)
        app.state.gateway = gw
        await gw.scheduler.start()
        try:
            yield
        finally:
            await gw.close()

    app = FastAPI(title="llmctl gateway", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        _count_error(request, exc.status)
        return errors.response(exc, errors.is_openai(request))

    @app.exception_handler(LlmctlError)
    async def _llmctl_error(request: Request, exc: LlmctlError) -> Response:
        err = errors.from_llmctl(exc)
        _count_error(request, err.status)
        return errors.response(err, errors.is_openai(request))

    @app.exception_handler(404)
    async def _no_route(request: Request, exc: Exception) -> Response:
        err = GatewayError(404, f"no route {request.method} {request.url.path}")
        return errors.response(err, errors.is_openai(request))

    @app.exception_handler(405)
    async def _bad_method(request: Request, exc: Exception) -> Response:
        err = GatewayError(405, f"method {request.method} not allowed on {request.url.path}")
        return errors.response(err, errors.is_openai(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        _count_error(request, 500)
        err = GatewayError(500, f"internal error: {type(exc).__name__}: {exc}")
        return errors.response(err, errors.is_openai(request))

    @app.get("/health")
    async def health(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        return JSONResponse({"status": "ok", "version": __version__, "loaded": len(gw.scheduler.runners()),
                             "uptime": round(time.time() - gw.started_at, 3)})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE)

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return PlainTextResponse("llmctl is running (Ollama and OpenAI compatible API)")

    from llmctl.runtime.gateway import (
        create_routes, manage_routes, ollama_legacy, ollama_routes, openai_routes,
    )

    app.include_router(openai_routes.router)
    app.include_router(ollama_routes.router)
    app.include_router(ollama_legacy.router)
    app.include_router(manage_routes.router)
    app.include_router(create_routes.router)
    if options.api_key:
        app.add_middleware(ApiKeyMiddleware, key=options.api_key)
    return app


def _count_error(request: Request, status: int) -> None:
    gw: Gateway | None = getattr(request.app.state, "gateway", None)
    if gw is None:
        return
    route = request.url.path
    # no model label on 404s: names a client made up must not grow the label set
    model = "" if status == 404 else getattr(request.state, "model", "") or ""
    gw.finish(route, model, status, "client" if status < 500 else "server")


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
