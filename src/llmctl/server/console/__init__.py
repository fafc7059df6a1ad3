"""The web console of `llmctl serve` at `/ui`: what is stored, what runs, pulls and pushes, a chat, metrics, logs.

The page is static (HTML, a few ES modules and CSS shipped in `llmctl/data/ui`, no build step, no CDN) and
talks to the gateway's public APIs like any client: Ollama's `/api/tags`-family routes for models, `/api/ps`,
`/api/chat`, `/api/copy`, `/api/delete`. What those APIs lack lives here, under `/api/llmctl/`
(`routes`): the store listing with `llmctl list --json`'s fields, pull/push jobs whose progress outlives the
request that started them (`transfers`), a JSON snapshot of the gateway's own metrics (`stats`) and an engine
log tail by model name (`logs`). `static` serves the files with a strict CSP.

`install(app)` is all `server.app` calls; the console's state (its assets, the transfer jobs) lives on
`app.state`, one per app, like the gateway's.
"""

from __future__ import annotations

from fastapi import FastAPI

from llmctl.server.console import routes, static
from llmctl.server.console.static import is_public, wants_console
from llmctl.server.console.transfers import Transfers

__all__ = ["install", "is_public", "wants_console"]


def install(app: FastAPI) -> None:
    """Serve the console at /ui and its endpoints at /api/llmctl/ on `app`."""
    app.state.console_assets = static.load_assets()
    app.state.transfers = Transfers()
    app.include_router(static.router)
    app.include_router(routes.router)
