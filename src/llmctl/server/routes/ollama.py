"""Ollama API: /api/generate, /api/chat (NDJSON streams), /api/embed, /api/tags, /api/ps, /api/show, /api/version.

Model management (pull, push, create, copy, delete, blobs) lives in `routes.manage` and `routes.create`;
the tool-call translation of /api/chat in `ollama_tools`.

Shapes follow Ollama's docs/api.md so ollama-python, Open WebUI and friends work unchanged: streams are
one JSON object per line; the final one carries `done_reason`, `total_duration`, `load_duration`,
`prompt_eval_count`, `prompt_eval_duration`, `eval_count`, `eval_duration` (nanoseconds). An empty prompt
(or empty messages) loads the model; with `keep_alive: 0` it unloads it instead (`ollama stop`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, AsyncGenerator, AsyncIterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl import __version__
from llmctl.runtime.memory import engine_memory
from llmctl.runtime.prompt import COMPLETION, JINJA, prompt_mode
from llmctl.runtime.scheduler import EMBED, GENERATE, Lease, Runner
from llmctl.server import answer, errors, ollama_tools, translate
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway, begin_model_request, gateway_of
from llmctl.server.proxy import (
    ClientGone, EventStream, Piece, UpstreamError, post_json, until_disconnect,
)

log = logging.getLogger("llmctl.gateway")
router = APIRouter()
NDJSON = "application/x-ndjson"
FOREVER = "9999-12-31T23:59:59Z"
CLIENT_CLOSED = 499


@router.get("/api/version")
async def version() -> Response:
    return JSONResponse({"version": __version__})


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    gw = gateway_of(request)
    return JSONResponse({"models": await asyncio.to_thread(_tags, gw)})


def _tags(gw: Gateway) -> list[dict[str, Any]]:
    from llmctl.api.manage import list_models
    from llmctl.api.models import get_model

    out = []
    for m in list_models(gw.settings):
        try:
            details = _details(get_model(gw.settings, m.reference))
        except Exception:  # a damaged entry still lists, as `llmctl list` does
            details = {}
        out.append({"name": m.name, "model": m.name, "modified_at": _iso(m.modified), "size": m.size,
                    "digest": m.digest.split(":", 1)[-1], "details": details})
    return out


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    gw = gateway_of(request)
    return JSONResponse({"models": [_ps_row(gw, r) for r in gw.scheduler.runners()]})


def _ps_row(gw: Gateway, r: Runner) -> dict[str, Any]:
    mem = engine_memory(r.process.pid, r.model.size, on_gpu=gw.scheduler.processor(r) != "100% CPU")
    return {
        "name": r.name, "model": r.name, "size": mem.size, "digest": r.model.digest.split(":", 1)[-1],
        "details": _details(r.model), "expires_at": _iso(r.expires_at) if r.expires_at is not None else FOREVER,
        "size_vram": mem.vram, "context_length": gw.options.ctx_size or r.model.facts.context_size or 0,
        # llmctl additions (Ollama clients ignore unknown fields)
        "id": r.model.id, "mode": r.mode, "port": r.process.port, "pid": r.process.pid,
        "processor": gw.scheduler.processor(r), "active": r.active, "requests": r.requests,
        "loaded_at": _iso(r.loaded_at), "load_duration": int(r.load_seconds * 1e9),
        "keep_alive_forever": r.expires_at is None, "log": str(getattr(r.process, "log_path", "") or ""),
        "prompt_mode": r.prompt_mode,
    }


@router.post("/api/show")
async def show(request: Request) -> Response:
    from llmctl.api.manage import modelfile_text, show_json

    gw = gateway_of(request)
    body = await gw.read_json(request)
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "model is required")
    model = await gw.scheduler.resolve(name)
    info = show_json(gw.settings, model)
    params = "\n".join(f"{k:<30} {json.dumps(v) if isinstance(v, str) else v}" for k, vs in model.parameters.items()
                       for v in (vs if isinstance(vs, list) else [vs]))
    return JSONResponse({
        "modelfile": modelfile_text(gw.settings, model), "parameters": params,
        "template": model.template or model.chat_template or "", "system": model.system or "",
        "license": "\n".join(model.licenses), "details": _details(model),
        "model_info": {f"{model.facts.architecture or 'general'}.context_length": model.facts.context_size,
                       "general.architecture": model.facts.architecture, "general.parameter_count": info["parameters"]},
        "capabilities": ["completion"], "modified_at": model.created or "",
    })


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise GatewayError(400, "prompt must be a string")
    if body.get("images"):
        raise GatewayError(400, "images are not supported by llmctl serve yet")
    if body.get("suffix"):
        raise GatewayError(400, "suffix (fill-in-the-middle) is not supported by llmctl serve yet")
    stream = translate.flag(body, "stream", True)
    raw = translate.flag(body, "raw", False)
    ka = gw.keep_alive(body.get("keep_alive"))
    if not prompt:
        return await _load_or_unload(gw, name, ka, "/api/generate", chat=False, started=started)
    system = body.get("system")
    lease = await gw.lease(name, keep_alive=ka, mode=GENERATE)
    try:
        options = translate.ollama_options(body.get("options"))
        if raw:
            endpoint, upstream = translate.ollama_raw(lease.runner.model, prompt, options, body.get("format"))
        else:
            endpoint, upstream = await gw.render(
                lease.runner, translate.ollama_chat, [{"role": "user", "content": prompt}], options,
                body.get("format"), system=system if isinstance(system, str) else None)
    except BaseException:
        gw.scheduler.release(lease)
        raise
    retry = None if raw else answer.retry_body(endpoint, upstream)
    return await _respond(gw, request, lease, "/api/generate", name, endpoint, upstream, retry, stream, started,
                          chat=False)


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    messages = translate.messages_of(body, allow_empty=True)
    if any(m.get("images") for m in messages):
        raise GatewayError(400, "images are not supported by llmctl serve yet")
    tools = ollama_tools.check_tools(body["tools"]) if body.get("tools") else None
    stream = translate.flag(body, "stream", True)
    ka = gw.keep_alive(body.get("keep_alive"))
    if not messages:
        return await _load_or_unload(gw, name, ka, "/api/chat", chat=True, started=started)
    # tools and tool turns go to llama-server's template as such, which only jinja mode has
    with_tools = bool(tools) or ollama_tools.has_tool_turns(messages)
    if with_tools and (mode := prompt_mode(await gw.scheduler.resolve(name))) != JINJA:
        if tools:
            raise GatewayError(400, f"{name} cannot call tools: tools need a model with a Jinja chat template, "
                                    f"and this one is served in {mode} mode", param="tools")
        with_tools = False  # tool results of a template/completion-mode model are plain turns
    lease = await gw.lease(name, keep_alive=ka, mode=GENERATE)
    calls = ollama_tools.ToolCalls() if with_tools else None
    try:
        options = translate.ollama_options(body.get("options"))
        if calls is not None:
            endpoint, upstream = ollama_tools.chat_request(lease.runner, messages, options, body.get("format"), tools)
        else:
            endpoint, upstream = await gw.render(lease.runner, translate.ollama_chat, messages, options,
                                                 body.get("format"))
    except BaseException:
        gw.scheduler.release(lease)
        raise
    retry = None if calls is not None else answer.retry_body(endpoint, upstream)
    return await _respond(gw, request, lease, "/api/chat", name, endpoint, upstream, retry, stream, started, chat=True,
                          calls=calls)


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    inp = body.get("input")
    if not (isinstance(inp, str) or (isinstance(inp, list) and inp and all(isinstance(s, str) for s in inp))):
        raise GatewayError(400, "input must be a string or a non-empty list of strings")
    lease = await gw.lease(name, keep_alive=gw.keep_alive(body.get("keep_alive")), mode=EMBED)
    data = await embeddings_of(gw, request, lease, "/api/embed", name, {"input": inp})
    if isinstance(data, Response):
        return data
    vectors = [d["embedding"] for d in sorted(data.get("data", []), key=lambda d: d.get("index", 0))]
    return JSONResponse({"model": name, "embeddings": vectors, "total_duration": _ns(time.monotonic() - started),
                         "load_duration": _ns(lease.load_seconds),
                         "prompt_eval_count": (data.get("usage") or {}).get("prompt_tokens", 0)})


async def embeddings_of(gw: Gateway, request: Request, lease: Lease, route: str, name: str,
                        payload: dict[str, Any]) -> dict[str, Any] | Response:
    """POST `payload` to the engine's /v1/embeddings; the lease is released and the request counted however
    it ends. An error (or a client gone) comes back as the Response to send instead of the engine's answer."""
    gw.metrics.in_flight.inc()
    code, kind = 200, None
    try:
        data: dict[str, Any] = await until_disconnect(
            request, post_json(gw.client, lease.runner.base_url + "/v1/embeddings", payload, lease.runner.auth_headers))
        return data
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
        gw.finish(route, name, code, kind)


async def _load_or_unload(gw: Gateway, name: str, ka: float | None, route: str, *, chat: bool,
                          started: float) -> Response:
    stopped: list[Runner] = []
    if ka == 0:
        stopped = await gw.scheduler.unload(name)
        reason = "unload"
        load_seconds = 0.0
    else:
        lease = await gw.lease(name, keep_alive=ka, mode=GENERATE)
        gw.scheduler.release(lease)  # loaded and idle: the keep-alive starts now
        reason, load_seconds = "load", lease.load_seconds
    gw.finish(route, name, 200)
    out: dict[str, Any] = {"model": name, "created_at": translate.now_rfc3339()}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    out.update(done=True, done_reason=reason)
    if reason == "load":
        out.update(total_duration=_ns(time.monotonic() - started), load_duration=_ns(load_seconds))
    else:
        out["unloaded"] = [r.name for r in stopped]  # llmctl addition: what stopped (empty: nothing was loaded)
    return JSONResponse(out)


async def _respond(gw: Gateway, request: Request, lease: Lease, route: str, name: str, endpoint: str,
                   upstream: dict[str, Any], retry: dict[str, Any] | None, stream: bool, started: float, *,
                   chat: bool, calls: ollama_tools.ToolCalls | None = None) -> Response:
    """Stream (or collect) one answer as Ollama NDJSON; `retry` is the fallback for an empty answer, `calls`
    collects tool calls (a jinja-mode chat with tools)."""
    resp = await gw.open_engine_stream(lease, route, name, endpoint, upstream, dialect=errors.OLLAMA)
    if isinstance(resp, Response):
        return resp
    state: dict[str, Any] = {"kind": None, "text": [], "final": None, "tool_calls": []}
    events: AsyncGenerator[list[Piece], None]
    if calls is not None:
        events = _one_by_one(ollama_tools.pieces(resp, calls))
    else:
        events = answer.batches(resp, lease.runner.base_url + endpoint, retry, answer.Outcome(),
                                strip_leading=lease.runner.prompt_mode == COMPLETION, headers=lease.runner.auth_headers)
    lines = _lines(gw, lease, events, name, started, chat, state, calls)
    if stream:
        def on_close(cancelled: bool) -> None:
            gw.end(lease, route, name, CLIENT_CLOSED if cancelled else 200, "cancelled" if cancelled else state["kind"])

        return EventStream(lines, media_type=NDJSON, on_close=on_close)

    async def collect() -> None:
        async for _ in lines:
            pass

    try:
        await until_disconnect(request, collect())
    except ClientGone:
        gw.end(lease, route, name, CLIENT_CLOSED, "cancelled")
        return Response(status_code=CLIENT_CLOSED)
    if state["kind"] or state["final"] is None:
        err = state.get("error") or GatewayError(502, "the engine stopped without finishing the answer")
        log.warning("%s %s: %s", route, name, err.message)
        gw.end(lease, route, name, err.status, "engine")
        return errors.response(err, False)
    gw.end(lease, route, name, 200)
    final = state["final"]
    text = "".join(state["text"])
    if chat:
        final["message"]["content"] = text
        if state["tool_calls"]:
            final["message"]["tool_calls"] = state["tool_calls"]
    else:
        final["response"] = text
    return JSONResponse(final)


async def _lines(gw: Gateway, lease: Lease, events: AsyncGenerator[list[Piece], None], name: str, started: float,
                 chat: bool, state: dict[str, Any], calls: ollama_tools.ToolCalls | None = None) -> AsyncIterator[bytes]:
    """Engine events -> Ollama NDJSON lines: one per token, then the final one with the timings.

    The lines of one read of the engine's stream leave together, in one write, and share one `created_at`
    (they arrived at the same moment). The final line is written when the engine's stream ends: in jinja
    mode the finish reason and the token counts arrive in two different events.
    """
    first_at = None
    finish: str | None = None
    counts = Piece()
    clock = translate.Clock()
    head, key, tail = _token_line_parts(name, chat)
    try:
        async for batch in events:
            for p in batch:
                _merge_counts(counts, p)
                finish = p.finish or finish
            texts = [p.text for p in batch if p.text]
            if texts:
                state["text"].extend(texts)
                first_at = first_at or time.monotonic()
                prefix = head + clock.now().encode() + key
                yield b"".join(prefix + json.dumps(t, ensure_ascii=False).encode() + tail for t in texts)
    except UpstreamError as exc:
        err = await gw.upstream_error(lease, exc)
        state["kind"], state["error"] = "engine", err
        yield errors.stream_error_line(err, False)
        return
    finally:
        await events.aclose()
    if finish is None:
        return
    state["tool_calls"] = calls.ollama() if calls is not None else []
    if state["tool_calls"]:  # Ollama sends the calls whole, in a message of their own before the final one
        yield json.dumps({"model": name, "created_at": translate.now_rfc3339(), "message": {
            "role": "assistant", "content": "", "tool_calls": state["tool_calls"]}, "done": False},
            ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    gw.metrics.observe_generation(
        name, ttft=None if first_at is None else first_at - started, prompt_tokens=counts.prompt_tokens,
        completion_tokens=counts.completion_tokens, generation_seconds=(counts.predicted_ms or 0) / 1000 or None)
    state["final"] = _final(name, chat, finish, counts, lease, started)
    yield json.dumps(state["final"], separators=(",", ":")).encode() + b"\n"


def _token_line_parts(name: str, chat: bool) -> tuple[bytes, bytes, bytes]:
    """A token line is head + created_at + key + the JSON text + tail: built from bytes, once per answer."""
    head = (f'{{"model":{json.dumps(name)},"created_at":"').encode()
    key = b'","message":{"role":"assistant","content":' if chat else b'","response":'
    tail = b'},"done":false}\n' if chat else b',"done":false}\n'
    return head, key, tail


def _merge_counts(counts: Piece, p: Piece) -> None:
    """The token counts and timings a piece carries (jinja mode sends them apart from the finish reason)."""
    for k in ("prompt_tokens", "completion_tokens", "prompt_ms", "predicted_ms"):
        if getattr(p, k) is not None:
            setattr(counts, k, getattr(p, k))


def _final(name: str, chat: bool, finish: str, counts: Piece, lease: Lease, started: float) -> dict[str, Any]:
    """Ollama's last line: done, why, and the durations and counts (nanoseconds, as Ollama reports them)."""
    final: dict[str, Any] = {"model": name, "created_at": translate.now_rfc3339()}
    if chat:
        final["message"] = {"role": "assistant", "content": ""}
    else:
        final["response"] = ""
    final.update(
        done=True, done_reason=ollama_tools.done_reason(finish), total_duration=_ns(time.monotonic() - started),
        load_duration=_ns(lease.load_seconds), prompt_eval_count=counts.prompt_tokens or 0,
        prompt_eval_duration=_ns((counts.prompt_ms or 0) / 1000), eval_count=counts.completion_tokens or 0,
        eval_duration=_ns((counts.predicted_ms or 0) / 1000),
    )
    return final


async def _one_by_one(pieces: AsyncGenerator[Piece, None]) -> AsyncGenerator[list[Piece], None]:
    """A Piece stream as batches of one (tool-call streams are parsed event by event anyway)."""
    try:
        async for p in pieces:
            yield [p]
    finally:
        await pieces.aclose()


def _details(model: Any) -> dict[str, Any]:
    f = model.facts
    family = f.architecture or ""
    return {"parent_model": "", "format": f.format or "gguf", "family": family, "families": [family] if family else None,
            "parameter_size": f.parameters or "", "quantization_level": f.quantization or ""}


def _iso(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)
