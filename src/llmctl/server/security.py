"""The gateway's front gate: one pure-ASGI middleware decides whether a request may reach a route at all.

Any web page the user visits can send requests to `http://127.0.0.1:11434`, and with DNS rebinding
(`evil.example` resolving to 127.0.0.1) even read the answers. So, in this order, before any route runs:

1. **Host** (DNS rebinding, as Ollama's `allowedHostsMiddleware`, Jupyter and the MCP SDKs check it): on a
   loopback listener (or a request that arrived over loopback) the Host must be an IP literal, `localhost`,
   `*.localhost`, this machine's name, or listed in LLMCTL_ALLOWED_HOSTS. Else 403.
2. **Origin** (browser pages): a request with an Origin outside LLMCTL_ORIGINS + Ollama's defaults, and not
   the gateway's own origin (same-origin pages such as a console at `/ui`), is 403 whatever its method.
   CORS answers (preflights included) go only to allowed origins.
3. **API key** (`serve --api-key`): every path but `/health` (and the web console's static files) needs
   `Authorization: Bearer KEY` (or Anthropic's `x-api-key: KEY`), HEAD and OPTIONS included. 401.
4. **Content-Type of writes**: POST/PUT/PATCH/DELETE must be `application/json` (blob uploads may also be
   `application/octet-stream`): a browser can send `text/plain` or a form cross-origin without a preflight,
   never JSON. `curl -d` (form-urlencoded) and clients that send no type are accepted only when the request
   carries neither `Origin` nor `Sec-Fetch-Site`, which every browser adds to such requests. 415.
5. **Body size**: a JSON body larger than LLMCTL_MAX_BODY is 413, from its Content-Length before anything is
   read, or while it is read; the body is read here whole (routes read it whole anyway) so a refused request
   never reaches a route. Blob uploads stream: their size is checked by the route against the free disk.

A refused request changes nothing: no route ran. Refusals are counted in `llmctl_requests_refused_total`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmctl.names import is_loopback, split_host
from llmctl.server import errors
from llmctl.server.errors import GatewayError
from llmctl.settings import ServeLimits

log = logging.getLogger("llmctl.gateway")

OPEN_PATHS = frozenset({"/health"})
BLOB_PREFIX = "/api/blobs/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Ollama's envconfig.AllowedOrigins, after what OLLAMA_ORIGINS adds: these hosts on any port, and app shells
DEFAULT_ORIGINS = tuple(
    f"{scheme}://{host}{port}" for host in ("localhost", "127.0.0.1", "0.0.0.0") for scheme in ("http", "https")
    for port in ("", ":*")
) + ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")
# gin-contrib/cors's defaults as Ollama configures them: what a preflight may ask for
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
ALLOW_HEADERS = ", ".join((
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "X-Api-Key", "OpenAI-Beta",
    "Anthropic-Version", "Anthropic-Beta", "x-stainless-arch", "x-stainless-async",
    "x-stainless-custom-poll-interval", "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os",
    "x-stainless-package-version", "x-stainless-poll-helper", "x-stainless-retry-count", "x-stainless-runtime",
    "x-stainless-runtime-version", "x-stainless-timeout",
))
PREFLIGHT_MAX_AGE = "43200"  # 12 h, gin-contrib/cors's default
JSON_TYPES = frozenset({"application/json"})
CURL_TYPES = frozenset({"", "application/x-www-form-urlencoded"})  # `curl -d`, clients that send no type


@dataclass(frozen=True)
class Policy:
    """What the gate enforces, fixed when the app is built (`of`)."""

    api_key: str | None = None
    origins: tuple[str, ...] = DEFAULT_ORIGINS
    allowed_hosts: tuple[str, ...] = ()
    loopback_listener: bool = True
    max_body: int = ServeLimits.max_body
    hostname: str = ""
    public: Callable[[str, str], bool] = field(default=lambda method, path: False)  # open without the key

    @classmethod
    def of(cls, limits: ServeLimits, *, listen_host: str, api_key: str | None,
           public: Callable[[str, str], bool] | None = None) -> "Policy":
        """`public(method, path)`: what else needs no API key besides /health (the web console's static files,
        which hold no secret and let the page ask for the key)."""
        return cls(api_key=api_key or None, origins=tuple(o.lower() for o in limits.origins) + DEFAULT_ORIGINS,
                   allowed_hosts=tuple(h.lower() for h in limits.allowed_hosts),
                   loopback_listener=is_loopback(listen_host), max_body=limits.max_body,
                   hostname=socket.gethostname().lower(), public=public or (lambda method, path: False))

    # -- the rules, pure ----------------------------------------------------------------------------------
    def host_allowed(self, host: str, local_address: str | None) -> bool:
        """A Host that cannot be a rebinding attacker's name, where the listener is reached over loopback."""
        if not host or not (self.loopback_listener or (local_address and is_loopback(local_address))):
            return True
        name = split_host(host)[0].lower().rstrip(".")
        if _is_ip(name) or name == "localhost" or name.endswith(".localhost") or name == self.hostname:
            return True
        return any(_matches(name, p) or _matches(host.lower(), p) for p in self.allowed_hosts)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """An allowed origin (wildcards as OLLAMA_ORIGINS), or the gateway's own (a same-origin page)."""
        origin = origin.lower()
        if host and origin in (f"http://{host.lower()}", f"https://{host.lower()}"):
            return True
        return any(_matches(origin, pattern) for pattern in self.origins)

    def key_ok(self, headers: dict[bytes, bytes]) -> bool:
        if self.api_key is None:
            return True
        given = headers.get(b"authorization", b"")
        if hmac.compare_digest(given, b"Bearer " + self.api_key.encode()):
            return True
        return hmac.compare_digest(headers.get(b"x-api-key", b""), self.api_key.encode())


def content_type_ok(method: str, path: str, headers: dict[bytes, bytes]) -> bool:
    """Writes are JSON (or a blob upload's octet-stream); curl's form type or none only outside browsers."""
    if method not in WRITE_METHODS:
        return True
    media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower().decode("latin-1")
    if media in JSON_TYPES or (path.startswith(BLOB_PREFIX) and media == "application/octet-stream"):
        return True
    from_browser = b"origin" in headers or b"sec-fetch-site" in headers
    return media in CURL_TYPES and not from_browser


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _matches(value: str, pattern: str) -> bool:
    """`*` alone matches anything; else each `*` matches any run of characters (OLLAMA_ORIGINS's wildcards)."""
    if pattern == "*" or value == pattern:
        return True
    if "*" not in pattern:
        return False
    parts = pattern.split("*")
    if not (value.startswith(parts[0]) and value.endswith(parts[-1])) or len(value) < len(parts[0]) + len(parts[-1]):
        return False
    pos = len(parts[0])
    for middle in parts[1:-1]:
        found = value.find(middle, pos, len(value) - len(parts[-1]))
        if found < 0:
            return False
        pos = found + len(middle)
    return True


class Refused(Exception):
    """A request the gate turns away: the status, the message, and the metrics reason."""

    def __init__(self, status: int, message: str, reason: str, code: str | None = None) -> None:
        super().__init__(message)
        self.error = GatewayError(status, message, code=code)
        self.reason = reason


class RequestGuard:
    """Pure ASGI (BaseHTTPMiddleware would buffer streams and break disconnect detection)."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1")
        host = headers.get(b"host", b"").decode("latin-1")
        cors = origin and self.policy.origin_allowed(origin, host)
        send = _with_cors(send, origin) if cors else send
        try:
            self._check(scope, headers, origin, host)
            if cors and _is_preflight(scope, headers):
                await _preflight(send, origin)
                return
            self._check_key_and_type(scope, headers)
            receive = await self._read_body(scope, headers, receive)
        except Refused as exc:
            _count(scope, exc.reason)
            await errors.response(exc.error, errors.dialect_of(scope["path"]))(scope, receive, send)
            return
        except _Gone:
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, headers: dict[bytes, bytes], origin: str, host: str) -> None:
        local = (scope.get("server") or (None,))[0]
        if not self.policy.host_allowed(host, local):
            log.warning("refused a request for Host %r (DNS rebinding?); LLMCTL_ALLOWED_HOSTS lists more", host[:100])
            raise Refused(403, f"host {host[:100]!r} is not allowed; add it to LLMCTL_ALLOWED_HOSTS on the server",
                          "host")
        if origin and not self.policy.origin_allowed(origin, host):
            raise Refused(403, f"origin {origin[:100]!r} is not allowed; add it to LLMCTL_ORIGINS on the server",
                          "origin")

    def _check_key_and_type(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        open_path = scope["path"] in OPEN_PATHS or self.policy.public(scope["method"], scope["path"])
        if not open_path and not self.policy.key_ok(headers):
            raise Refused(401, "missing or wrong API key (send `Authorization: Bearer KEY`)", "api_key",
                          code="invalid_api_key")
        if not content_type_ok(scope["method"], scope["path"], headers):
            given = headers.get(b"content-type", b"").decode("latin-1")[:100] or "none"
            raise Refused(415, f"Content-Type {given!r} is not accepted here: send application/json", "content_type")

    async def _read_body(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive) -> Receive:
        """Refuse a body over the cap by its length, else read it whole (capped) and replay it to the app."""
        length = headers.get(b"content-length", b"")
        blob = scope["path"].startswith(BLOB_PREFIX)
        cap = self.policy.max_body
        if not blob and length.isdigit() and int(length) > cap:
            raise Refused(413, f"request body of {int(length)} bytes is larger than {cap} (LLMCTL_MAX_BODY)", "body_size")
        if blob or scope["method"] not in WRITE_METHODS:
            return receive
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone()
            body += message.get("body", b"")
            if len(body) > cap:
                raise Refused(413, f"request body is larger than {cap} bytes (LLMCTL_MAX_BODY)", "body_size")
            if not message.get("more_body", False):
                break
        return _replay(bytes(body), receive)


class _Gone(Exception):
    """The client left while its body was being read: nothing to answer."""


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, which streams watch for

    return replay


def _is_preflight(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    return scope["method"] == "OPTIONS" and b"access-control-request-method" in headers


async def _preflight(send: Send, origin: str) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": [
        (b"access-control-allow-methods", ALLOW_METHODS.encode()),
        (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
    ]})
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    """Every answer to an allowed origin says so, errors included, so the page can read them."""
    extra = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return cors_send


def _count(scope: Scope, reason: str) -> None:
    gateway: Any = getattr(getattr(scope.get("app"), "state", None), "gateway", None)
    if gateway is not None:
        gateway.metrics.refused.labels(reason).inc()
