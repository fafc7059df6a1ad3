"""The gateway's FastAPI app: one factory, all state on `app.state.gateway`, nothing global.

`create_app(settings, options)` returns an app whose lifespan owns a `Gateway` (`gateway.py`: the scheduler,
one pooled `httpx.AsyncClient` to the engines, a `Metrics` registry). Routes live in `routes/`: `openai`,
`responses` (OpenAI's Responses API), `messages` (Anthropic's Messages API), `ollama` (+ `ollama_legacy`)
and, for Ollama's model management, `manage` and `create`. This module adds what is not a model route: the
front gate (`security.RequestGuard`: Host, Origin and CORS, API key, Content-Type, body size), error handlers,
`/health`, `/metrics` and `/`, and installs the web console (`console`: `/ui` and its `/api/llmctl/` endpoints).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from llmctl import __version__
from llmctl.errors import LlmctlError
from llmctl.server import console, errors
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway, GatewayOptions
from llmctl.server.metrics import CONTENT_TYPE
from llmctl.server.routes import create, manage, messages, ollama, ollama_legacy, openai, responses
from llmctl.server.security import Policy, RequestGuard
from llmctl.settings import Settings

log = logging.getLogger("llmctl.gateway")


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
    _add_error_handlers(app)
    _add_service_routes(app)
    for module in (openai, responses, messages, ollama, ollama_legacy, manage, create):
        app.include_router(module.router)
    console.install(app)
    app.add_middleware(RequestGuard, policy=Policy.of(settings.limits, listen_host=options.host,
                                                      api_key=options.api_key, public=console.is_public))
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure leaves as the dialect's error body (`errors.py`) with the status of the one table."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        _count_error(request, exc.status)
        return errors.response(exc, errors.dialect(request))

    @app.exception_handler(LlmctlError)
    async def _llmctl_error(request: Request, exc: LlmctlError) -> Response:
        err = errors.from_llmctl(exc)
        _count_error(request, err.status)
        return errors.response(err, errors.dialect(request))

    @app.exception_handler(404)
    async def _no_route(request: Request, exc: Exception) -> Response:
        err = GatewayError(404, f"no route {request.method} {request.url.path}")
        return errors.response(err, errors.dialect(request))

    @app.exception_handler(405)
    async def _bad_method(request: Request, exc: Exception) -> Response:
        err = GatewayError(405, f"method {request.method} not allowed on {request.url.path}")
        return errors.response(err, errors.dialect(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        _count_error(request, 500)
        err = GatewayError(500, f"internal error: {type(exc).__name__}: {exc}")
        return errors.response(err, errors.dialect(request))


def _add_service_routes(app: FastAPI) -> None:
    """What is not a model API: liveness, Prometheus metrics, and Ollama's plain-text root."""

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
    async def root(request: Request) -> Response:
        if console.wants_console(request):  # a browser: the console; Ollama's clients keep the plain text
            return RedirectResponse("/ui/", status_code=303)
        return PlainTextResponse("llmctl is running (Ollama and OpenAI compatible API)")


def _count_error(request: Request, status: int) -> None:
    gw: Gateway | None = getattr(request.app.state, "gateway", None)
    if gw is None:
        return
    # labels a client cannot grow: the route's template (not its path), a model only once it resolved
    gw.finish(route_label(request), getattr(request.state, "model", "") or "", status,
              "client" if status < 500 else "server")


def route_label(request: Request) -> str:
    """The matched route's template (`/v1/models/{name:path}`), or "other" for paths no route has."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "other"
