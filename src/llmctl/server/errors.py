"""Error bodies in the three API dialects the gateway speaks.

OpenAI clients (the `openai` package, LangChain, ...) parse `{"error": {"message", "type", "param",
"code"}}` and pick an exception class from the HTTP status; Ollama clients read `{"error": "..."}`;
Anthropic clients (the `anthropic` package, Claude Code) `{"type": "error", "error": {"type", "message"}}`.
The dialect follows the path (`/v1/messages...` is Anthropic's, the rest of `/v1/...` OpenAI's, everything
else Ollama's), so one typed exception raised anywhere in a route turns into the shape its client expects.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse

from llmctl.errors import (
    AuthError,
    Busy,
    Conflict,
    EngineError,
    InsufficientSpace,
    IntegrityError,
    InvalidInput,
    LlmctlError,
    NotFound,
    OfflineError,
    RegistryError,
    UsageError,
)


OPENAI, OLLAMA, ANTHROPIC = "openai", "ollama", "anthropic"
# A dialect by name; True / False are the OpenAI / Ollama shorthand of the routes that speak only those two.
Dialect = Literal["openai", "ollama", "anthropic"] | bool


class GatewayError(Exception):
    """An HTTP error with a status, a message, and the OpenAI `type`/`param` that go with it."""

    def __init__(self, status: int, message: str, *, type_: str | None = None, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _TYPES.get(status, ("api_error",))[0]
        self.param = param
        self.code = code


# Per status: the error `type` OpenAI clients get, and the one Anthropic clients get (Anthropic's own list:
# invalid_request_error, authentication_error, permission_error, not_found_error, request_too_large,
# rate_limit_error, api_error, overloaded_error). A status not listed is "api_error" in both.
_TYPES = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("not_found_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    408: ("timeout_error", "api_error"),
    409: ("conflict_error", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "invalid_request_error"),
    422: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_error"),
    500: ("server_error", "api_error"),
    502: ("engine_error", "api_error"),
    503: ("server_error", "overloaded_error"),
    504: ("timeout_error", "api_error"),
    507: ("server_error", "api_error"),
    529: ("server_error", "overloaded_error"),
}


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


# The one table from the typed errors of `llmctl.errors` to HTTP statuses, for every route and every job:
# what the client got wrong is 4xx, what a registry or an engine did is 5xx. The first matching row wins, so
# a subclass comes before its base (AuthError is a RegistryError). Anything else is a 500.
HTTP_STATUS: tuple[tuple[type[LlmctlError], int], ...] = (
    (NotFound, 404),  # "model 'x' not found", as Ollama words it
    (InvalidInput, 400),  # InvalidReference, InvalidModelfile, InvalidModel too
    (UsageError, 400),
    (Busy, 503),  # a model's queue or the job limit is full: retry later (Ollama: "server busy, please try again")
    (Conflict, 409),
    (InsufficientSpace, 507),  # the server's disk, not the client's request
    (AuthError, 401),  # the registry refused the server's credentials, not the client's API key: said so below
    (OfflineError, 503),  # LLMCTL_OFFLINE on the server: nothing the client can change
    (RegistryError, 502),
    (IntegrityError, 502),  # what a registry sent does not match its digest
    (EngineError, 502),
)


def status_of(exc: LlmctlError) -> int:
    return next((status for kind, status in HTTP_STATUS if isinstance(exc, kind)), 500)


def from_llmctl(exc: LlmctlError) -> GatewayError:
    """A typed error as the HTTP error of `HTTP_STATUS`."""
    status = status_of(exc)
    if isinstance(exc, NotFound):
        return GatewayError(status, exc.message, code="model_not_found")
    if isinstance(exc, AuthError):
        return GatewayError(status, f"registry: {exc}")
    return GatewayError(status, str(exc))


def dialect_of(path: str) -> str:
    """The dialect a path's clients speak: Anthropic's Messages API, the rest of /v1 OpenAI, else Ollama."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ANTHROPIC
    return OPENAI if path.startswith("/v1/") else OLLAMA


def dialect(request: Request) -> str:
    return dialect_of(request.url.path)


def _name(d: Dialect) -> str:
    if isinstance(d, bool):
        return OPENAI if d else OLLAMA
    return d


def anthropic_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status][1]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def body(err: GatewayError, dialect: Dialect) -> dict[str, Any]:
    d = _name(dialect)
    if d == OPENAI:
        return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    if d == ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic_type(err.status), "message": err.message}}
    return {"error": err.message}


def response(err: GatewayError, dialect: Dialect) -> JSONResponse:
    return JSONResponse(body(err, dialect), status_code=err.status)


def stream_error_line(err: GatewayError, dialect: Dialect) -> bytes:
    """An error that happens after a stream started: one last SSE event or NDJSON line, as each API does
    (Anthropic's is a named `error` event)."""
    d = _name(dialect)
    data = json.dumps(body(err, d)).encode()
    if d == ANTHROPIC:
        return b"event: error\ndata: " + data + b"\n\n"
    if d == OPENAI:
        return b"data: " + data + b"\n\n"
    return data + b"\n"
