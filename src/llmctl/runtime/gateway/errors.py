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
    Conflict,
    EngineError,
    InvalidInput,
    LlmctlError,
    NotFound,
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


def from_llmctl(exc: LlmctlError) -> GatewayError:
    """Map the project's typed errors to HTTP: what the client got wrong is 4xx, the engine is 5xx."""
    if isinstance(exc, NotFound):
        return GatewayError(404, exc.message, code="model_not_found")
    if isinstance(exc, (InvalidInput, UsageError)):
        return GatewayError(400, str(exc))
    if isinstance(exc, Conflict):
        return GatewayError(409, str(exc))
    if isinstance(exc, EngineError):
        return GatewayError(502, str(exc))
    return GatewayError(500, str(exc))


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
