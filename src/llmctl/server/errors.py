"""Error bodies in the two API dialects the gateway speaks.

OpenAI clients (the `openai` package, LangChain, ...) parse `{"error": {"message", "type", "param",
"code"}}` and pick an exception class from the HTTP status; Ollama clients read `{"error": "..."}`. The
dialect follows the path (`/v1/...` is OpenAI, everything else Ollama), so one typed exception raised
anywhere in a route turns into the shape its client expects.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from llmctl.errors import (
    AuthError,
    Conflict,
    EngineError,
    IntegrityError,
    InvalidInput,
    LlmctlError,
    NotFound,
    OfflineError,
    RegistryError,
    UsageError,
)


class GatewayError(Exception):
    """An HTTP error with a status, a message, and the OpenAI `type`/`param` that go with it."""

    def __init__(self, status: int, message: str, *, type_: str | None = None, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _TYPES.get(status, "api_error")
        self.param = param
        self.code = code


_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "engine_error",
    503: "server_error",
    504: "timeout_error",
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
    (Conflict, 409),
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


def is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def body(err: GatewayError, openai: bool) -> dict[str, Any]:
    if openai:
        return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    return {"error": err.message}


def response(err: GatewayError, openai: bool) -> JSONResponse:
    return JSONResponse(body(err, openai), status_code=err.status)


def stream_error_line(err: GatewayError, openai: bool) -> bytes:
    """An error that happens after a stream started: one last SSE event or NDJSON line, as both APIs do."""
    import json

    if openai:
        return b"data: " + json.dumps(body(err, True)).encode() + b"\n\n"
    return json.dumps(body(err, False)).encode() + b"\n"
