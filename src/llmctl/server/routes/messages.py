"""Anthropic's Messages API: POST /v1/messages and POST /v1/messages/count_tokens.

For Claude Code and other Anthropic-protocol clients (`ANTHROPIC_BASE_URL=http://127.0.0.1:11434`). A request
becomes an OpenAI chat (`server.anthropic`), runs as /v1/chat/completions runs (`server.chatbridge`,
`server.generation`), and the engine's answer becomes a Message or Anthropic's event stream
(`server.anthropic_stream`). Errors leave in Anthropic's shape (`errors.dialect_of`); the API key may come as
`x-api-key` (Anthropic's SDKs) or `Authorization: Bearer`; the `anthropic-version` header is accepted as is.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.server import anthropic, errors, generation
from llmctl.server.anthropic_stream import MessageStream
from llmctl.server.gateway import begin_model_request

router = APIRouter()


@router.post("/v1/messages")
async def create(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    req = anthropic.parse(body)
    lease, engine = await generation.prepare(gw, name, req.chat)
    tr = MessageStream(name, req.stop_sequences, stream=req.stream)
    return await generation.run(gw, request, lease, "/v1/messages", name, engine, tr, stream=req.stream,
                                started=started)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    _, gw, body, name = await begin_model_request(request)
    req = anthropic.parse(body, count_only=True)
    tokens = await generation.count(gw, name, "/v1/messages/count_tokens", req.chat, errors.ANTHROPIC)
    if isinstance(tokens, Response):
        return tokens
    return JSONResponse({"input_tokens": tokens})
