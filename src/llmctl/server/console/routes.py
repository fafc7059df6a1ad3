"""The console's own endpoints, under `/api/llmctl/`: what Ollama's API has no shape for.

- `GET /api/llmctl/models`: the store as `llmctl list --json` lists it (same fields, same order), plus each
  model's details (format, family, parameters, quantization, context) and its other names (`tags`).
- `GET /api/llmctl/transfers`, `POST /api/llmctl/transfers` (`{"kind": "pull"|"push", "model", "insecure"}`,
  202), `POST /api/llmctl/transfers/{id}/cancel`, `POST /api/llmctl/transfers/clear`: pull and push jobs
  whose progress any request can read (`transfers`).
- `GET /api/llmctl/stats`: the gateway's metrics per model, as JSON (`stats`).
- `GET /api/llmctl/logs?model=NAME[&offset=N]`: an engine's log, followed by offset (`logs`).

They sit behind the same gate as every route (API key, Origin, Content-Type) and answer errors in Ollama's
`{"error": ...}` shape with the statuses of the one table. Nothing here names a file on the server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.server import jobs, translate
from llmctl.server.console import logs, stats
from llmctl.server.console.transfers import KINDS, Transfers
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway, gateway_of
from llmctl.server.routes.manage import check_insecure, name_of

router = APIRouter(prefix="/api/llmctl")


def _transfers(request: Request) -> Transfers:
    return request.app.state.transfers


@router.get("/models")
async def models(request: Request) -> Response:
    gw = gateway_of(request)
    return JSONResponse({"models": await asyncio.to_thread(_models, gw)})


def _models(gw: Gateway) -> list[dict[str, Any]]:
    from llmctl.api.manage import list_models
    from llmctl.api.models import get_model

    listed = list_models(gw.settings)
    names_of: dict[str, list[str]] = {}
    for m in listed:
        names_of.setdefault(m.digest, []).append(m.name)
    out = []
    for m in listed:
        row = m.to_json()
        try:
            facts = get_model(gw.settings, m.reference).facts
            row.update(format=facts.format or "gguf", family=facts.architecture or "", parameters=facts.parameters or "",
                       quantization=facts.quantization or "", context_length=facts.context_size or 0)
        except Exception:  # noqa: BLE001 - a damaged entry still lists, as `llmctl list` does
            row.update(format="", family="", parameters="", quantization="", context_length=0)
        row["tags"] = [n for n in names_of[m.digest] if n != m.name]
        out.append(row)
    return out


@router.get("/transfers")
async def transfers(request: Request) -> Response:
    return JSONResponse({"transfers": [j.to_json() for j in _transfers(request).list()]})


@router.post("/transfers")
async def start_transfer(request: Request) -> Response:
    """Start a pull or push job and answer at once (202) with it; its progress is read from GET /transfers."""
    gw = gateway_of(request)
    body = await gw.read_json(request)
    kind = body.get("kind")
    if kind not in KINDS:
        raise GatewayError(400, f"kind must be one of {', '.join(KINDS)}", param="kind")
    name = name_of(body)
    insecure = translate.flag(body, "insecure", False)
    _check_name(gw, name)
    if kind == "push":
        from llmctl.api.push import check_stored

        await asyncio.to_thread(check_stored, gw.settings, name)  # NotFound: a 404, as /api/push answers
    if insecure:
        check_insecure(gw.settings, name)  # as /api/pull: only registries the operator allowed
    request.state.model = name  # only a valid name may become a metrics label
    if kind == "pull":
        from llmctl.api.pull import pull as transfer
    else:
        from llmctl.api.push import push as transfer
    work = jobs.counted(gw, lambda p: transfer(gw.settings, name, progress=p, insecure=insecure))  # LLMCTL_MAX_JOBS
    try:
        job = _transfers(request).start(kind, name, insecure, work)
    except BaseException:
        jobs.uncount(gw)  # refused (the same transfer runs already): it never started
        raise
    gw.finish("/api/llmctl/transfers", "", 202)
    return JSONResponse({"transfer": job.to_json()}, status_code=202)


def _check_name(gw: Gateway, name: str) -> None:
    """A name that could never be pulled or pushed (Hugging Face's included) is a 400 now, not a job that
    fails a moment later."""
    from llmctl.api.pull import check_name
    from llmctl.errors import LlmctlError

    try:
        check_name(gw.settings, name)
    except LlmctlError as exc:
        raise GatewayError(400, str(exc), param="model") from None


@router.post("/transfers/clear")
async def clear_transfers(request: Request) -> Response:
    """Forget the finished jobs (running ones stay)."""
    return JSONResponse({"forgotten": _transfers(request).forget_finished()})


@router.post("/transfers/{job_id}/cancel")
async def cancel_transfer(request: Request, job_id: str) -> Response:
    """Stop a running job at its next read; a finished one is answered as it is."""
    return JSONResponse({"transfer": _transfers(request).cancel(job_id).to_json()})


@router.get("/stats")
async def stats_(request: Request) -> Response:
    return JSONResponse(stats.snapshot(gateway_of(request)))


@router.get("/logs")
async def engine_log(request: Request) -> Response:
    gw = gateway_of(request)
    name = request.query_params.get("model", "").strip()
    if not name:
        raise GatewayError(400, "model is required", param="model")
    raw = request.query_params.get("offset")
    if raw is not None and not raw.isdigit():
        raise GatewayError(400, "offset must be a byte offset (a non-negative integer)", param="offset")
    piece = await asyncio.to_thread(logs.read, gw, name, None if raw is None else int(raw))
    return JSONResponse(piece.to_json())
