"""Ollama endpoints that Ollama itself superseded but older clients still call: POST /api/embeddings.

`/api/embeddings` ({model, prompt} -> {embedding: [...]}) predates `/api/embed`; LangChain's older Ollama
integration and many scripts still use it. As in Ollama, its vector is not normalized (`/api/embed`'s is),
so it asks llama-server for the raw pooled embedding (`embd_normalize: -1`); an empty prompt loads the
model and answers an empty embedding.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.runtime.gateway import errors, translate
from llmctl.runtime.gateway.app import begin_model_request
from llmctl.runtime.gateway.errors import GatewayError
from llmctl.runtime.gateway.proxy import ClientGone, UpstreamError, post_json, until_disconnect
from llmctl.runtime.scheduler import EMBED

router = APIRouter()
ROUTE = "/api/embeddings"
CLIENT_CLOSED = 499


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
    gw.metrics.in_flight.inc()
    code, kind = 200, None
    try:
        data: dict[str, Any] = await until_disconnect(request, post_json(
            gw.client, lease.runner.base_url + "/v1/embeddings", {"input": prompt, "embd_normalize": -1}))
    except ClientGone:
        code, kind = CLIENT_CLOSED, "cancelled"
        return Response(status_code=code)
    except UpstreamError as exc:
        err = await gw.upstream_error(lease, exc)
        code, kind = err.status, "engine"
        return errors.response(err, False)
    finally:
        gw.metrics.in_flight.dec()
        gw.scheduler.release(lease)
        gw.finish(ROUTE, name, code, kind)
    items = data.get("data") or []
    return JSONResponse({"embedding": items[0].get("embedding", []) if items else []})
