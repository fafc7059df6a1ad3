"""The console's files: read once from the package (`llmctl/data/ui`), served from memory with strict headers.

Only files that ship in the package can be served: a request names a key of the in-memory table, never a
path on disk, so there is nothing to traverse. Every answer carries a Content-Security-Policy that allows
nothing but this origin (no inline script, no `eval`, no third-party host: the console works offline and an
injected string cannot run), and may not be framed (clickjacking). The files are public: they hold no
data, and a browser cannot send an API key with a page navigation; everything the page then asks for goes
through the API and its key check (`is_public` says which paths are the files).

`GET /` stays Ollama's plain "is running" for API clients; a browser (one that asks for `text/html`) is sent
to the console instead (`wants_console`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from llmctl.server.gateway import gateway_of

router = APIRouter()

PREFIX = "/ui"
INDEX = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of `llmctl/data/ui`, by its path below it ("index.html", "js/api.js")."""
    assets: dict[str, Asset] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = prefix + child.name
            if child.is_dir():
                walk(child, name + "/")
                continue
            media = MEDIA_TYPES.get("." + child.name.rpartition(".")[2])
            if media is None:  # only the kinds of file a page needs; nothing else the folder might hold
                continue
            body = child.read_bytes()
            assets[name] = Asset(body, media, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')

    walk(resources.files("llmctl").joinpath("data", "ui"), "")
    return assets


def is_public(method: str, path: str) -> bool:
    """The console's files (and its key probe), which the browser loads without an API key."""
    return method in ("GET", "HEAD") and (path == PREFIX or path.startswith(PREFIX + "/"))


def wants_console(request: Request) -> bool:
    """A browser opening `/`: it asks for HTML. Ollama's clients (`HEAD /`, `GET /` with `*/*`) never do."""
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


@router.api_route(PREFIX, methods=["GET", "HEAD"], include_in_schema=False)
async def console_root() -> Response:
    # a trailing slash, so the page's relative links (`js/main.js`) resolve under /ui/
    return RedirectResponse(PREFIX + "/", status_code=307, headers=SECURITY_HEADERS)


@router.api_route(PREFIX + "/auth.json", methods=["GET", "HEAD"], include_in_schema=False)
async def auth(request: Request) -> Response:
    """Whether the page must ask for an API key before its first call (so it never gets a 401 to learn it)."""
    gw = gateway_of(request)
    return JSONResponse({"key_required": bool(gw.options.api_key)},
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.api_route(PREFIX + "/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    assets: dict[str, Asset] = request.app.state.console_assets
    found = assets.get(name or INDEX)
    if found is None:
        return Response(f"no console file {name!r}\n", status_code=404, media_type="text/plain; charset=utf-8",
                        headers=SECURITY_HEADERS)
    headers = {**SECURITY_HEADERS, "ETag": found.etag, "Cache-Control": "no-cache"}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else found.body
    headers["Content-Length"] = str(len(found.body))
    return Response(body, media_type=found.media_type, headers=headers)
