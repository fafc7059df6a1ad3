"""OpenAI's Responses API, stateless: POST /v1/responses and POST /v1/responses/input_tokens.

A request becomes an OpenAI chat (`server.responses`), runs as /v1/chat/completions runs (`server.chatbridge`:
model resolution, Modelfile defaults, jinja passthrough or a rendered prompt; `server.generation`: lease,
metrics, cancellation), and the engine's answer becomes a Response object or its typed events
(`server.responses_stream`).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.server import errors, generation, responses
from llmctl.server.gateway import begin_model_request
from llmctl.server.responses_stream import ResponseStream

router = APIRouter()


@router.post("/v1/responses")
async def create(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    req = responses.parse(body)
    lease, engine = await generation.prepare(gw, name, req.chat)
    tr = ResponseStream(name, req.echo, stream=req.stream)
    return await generation.run(gw, request, lease, "/v1/responses", name, engine, tr, stream=req.stream,
                                started=started)


@router.post("/v1/responses/input_tokens")
async def input_tokens(request: Request) -> Response:
    _, gw, body, name = await begin_model_request(request)
    req = responses.parse(body, count_only=True)
    tokens = await generation.count(gw, name, "/v1/responses/input_tokens", req.chat, errors.OPENAI)
    if isinstance(tokens, Response):
        return tokens
    return JSONResponse({"object": "response.input_tokens", "input_tokens": tokens})
