"""Ollama endpoints that Ollama itself superseded but older clients still call: POST /api/embeddings.

`/api/embeddings` ({model, prompt} -> {embedding: [...]}) predates `/api/embed`; LangChain's older Ollama
integration and many scripts still use it. As in Ollama, its vector is not normalized (`/api/embed`'s is),
so it asks llama-server for the raw pooled embedding (`embd_normalize: -1`); an empty prompt loads the
model and answers an empty embedding.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.runtime.scheduler import EMBED
from llmctl.server import translate
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import begin_model_request
from llmctl.server.routes.ollama import embeddings_of

router = APIRouter()
ROUTE = "/api/embeddings"


@router.post(ROUTE)
async def embeddings(request: Request) -> Response:
    _, gw, body, name = await begin_model_request(request)
    prompt = body.get("prompt")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise GatewayError(400, "prompt must be a string", param="prompt")
    translate.ollama_options(body.get("options"))  # checked as everywhere; load-time options need a restart
    lease = await gw.lease(name, keep_alive=gw.keep_alive(body.get("keep_alive")), mode=EMBED)
    if not prompt:
        gw.scheduler.release(lease)
        gw.finish(ROUTE, name, 200)
        return JSONResponse({"embedding": []})
    data = await embeddings_of(gw, request, lease, ROUTE, name, {"input": prompt, "embd_normalize": -1})
    if isinstance(data, Response):
        return data
    items = data.get("data") or []
    return JSONResponse({"embedding": items[0].get("embedding", []) if items else []})
