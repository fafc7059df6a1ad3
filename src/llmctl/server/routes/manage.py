"""Ollama's model management API: /api/pull, /api/push, /api/copy, /api/delete.

Ollama clients (ollama-python's `pull`/`push`/`copy`/`delete`, Open WebUI's model manager) call these on
the server they chat with; each one goes through the same library call as the matching `llmctl` command
(`llmctl.api.pull`, `.push`, `.manage`), so names resolve with the configured default registry and
namespace (`LLMCTL_REGISTRY`) and `LLMCTL_OFFLINE` is honoured. Pull and push stream Ollama's progress
objects (see `jobs`); copy and delete answer 200 with an empty body, or `{"error": ...}` with 400/404.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmctl.server import jobs, translate
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import gateway_of
from llmctl.settings import Settings

router = APIRouter()


def name_of(body: Mapping[str, Any], key: str = "model") -> str:
    """The model a management request names: `model`, or `name` as older Ollama clients send it."""
    value = body.get(key)
    if value in (None, "") and key == "model":
        value = body.get("name")
    if not isinstance(value, str) or not value.strip():
        raise GatewayError(400, f"{key} is required", param=key)
    return value.strip()


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    """Pull into the gateway's store, with the CLI's resume and verification; `insecure` allows plain HTTP."""
    from llmctl.api.pull import pull as pull_model

    return await _transfer(request, "/api/pull", pull_model, verb="pulling", first=("pulling manifest",),
                           after_blobs=("verifying sha256 digest", "writing manifest"))


@router.post("/api/push")
async def push(request: Request) -> Response:
    """Push a stored model to the registry its name points at (blobs it already has are skipped)."""
    from llmctl.api.push import push as push_model

    return await _transfer(request, "/api/push", push_model, verb="pushing", first=("retrieving manifest",),
                           after_blobs=("pushing manifest",))


async def _transfer(request: Request, route: str, transfer: Callable[..., Any], **status: Any) -> Response:
    """Pull or push the model the body names as a job whose progress becomes Ollama status lines."""
    gw = gateway_of(request)
    body = await gw.read_json(request)
    name = request.state.model = name_of(body)
    insecure = translate.flag(body, "insecure", False)
    if insecure:
        check_insecure(gw.settings, name)
    stream = translate.flag(body, "stream", True)
    return await jobs.respond(gw, request, route, name,
                              lambda p: transfer(gw.settings, name, progress=p, insecure=insecure),
                              stream=stream, **status)


def check_insecure(settings: Settings, name: str) -> None:
    """A client's `insecure: true` (plain HTTP, unverified TLS) is honoured only for registries the operator
    allowed: LLMCTL_INSECURE_REGISTRIES, or loopback. Elsewhere the server's stored credentials would go to
    whoever answers, so it is a 403 rather than a silent downgrade."""
    from llmctl.names import is_hf_name, is_loopback, parse_name

    registry = "hf.co" if is_hf_name(name) else parse_name(settings, name).registry
    if registry in settings.insecure_registries or is_loopback(registry):
        return
    raise GatewayError(403, f"insecure is not allowed for {registry}: the server verifies TLS for every registry "
                            "not listed in its LLMCTL_INSECURE_REGISTRIES", param="insecure")


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    """`llmctl tag SOURCE DESTINATION`: a second name for the same manifest; no bytes are copied."""
    from llmctl.api.manage import tag

    gw = gateway_of(request)
    body = await gw.read_json(request)
    source = request.state.model = name_of(body, "source")
    destination = name_of(body, "destination")
    await asyncio.to_thread(tag, gw.settings, source, destination)
    gw.finish("/api/copy", source, 200)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    """`llmctl rm NAME`, after stopping its engines when no other name keeps the same model."""
    from llmctl.api.manage import remove

    gw = gateway_of(request)
    body = await gw.read_json(request)
    name = request.state.model = name_of(body)
    if await asyncio.to_thread(_last_name_of_its_model, gw.settings, name):
        # its blobs are about to be collected: an engine must not outlive its weights file
        await gw.scheduler.unload(name)
    await asyncio.to_thread(remove, gw.settings, [name])
    gw.finish("/api/delete", name, 200)
    return Response(status_code=200)


def _last_name_of_its_model(settings: Any, name: str) -> bool:
    """Whether `name` is stored (NotFound if not) and no other tag points at its manifest."""
    from llmctl.api.models import open_store, parse_name

    store = open_store(settings)
    ref = parse_name(settings, name)
    desc = store.resolve(ref)  # NotFound: "model 'x' not found", a 404 like Ollama's
    return not any(e.descriptor.digest == desc.digest and str(e.reference) != str(ref) for e in store.entries())
