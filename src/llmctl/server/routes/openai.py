"""OpenAI API: /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings.

In the common case (an engine in jinja mode) a request goes to llama-server's own OpenAI endpoint and
the answer comes back byte for byte, except the `model` field, which says the name the client asked
for. Streams are relayed event by event as they arrive; the first content event gives TTFT, the last one
(llama-server's `timings`) gives token counts and speed for /metrics.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, AsyncIterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.runtime.prompt import COMPLETION
from llmctl.runtime.scheduler import EMBED, GENERATE, Lease
from llmctl.server import answer, errors, sse, translate
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway, begin_model_request, gateway_of
from llmctl.server.proxy import (
    SSE_HEADERS, ClientGone, EventStream, Piece, UpstreamError, UpstreamStream, parse_piece, post_json,
    until_disconnect,
)

router = APIRouter()
CLIENT_CLOSED = 499  # nginx's code for "client closed request": only ever seen in metrics


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    from llmctl.api.manage import list_models as stored

    gw = gateway_of(request)
    models = await asyncio.to_thread(stored, gw.settings)
    return JSONResponse({"object": "list", "data": [
        {"id": m.name, "object": "model", "created": int(m.modified), "owned_by": "llmctl"} for m in models]})


@router.get("/v1/models/{name:path}")
async def get_model(request: Request, name: str) -> Response:
    gw = gateway_of(request)
    model = await gw.scheduler.resolve(name)
    created = model.created or ""
    return JSONResponse({"id": name, "object": "model", "created": _epoch(created), "owned_by": "llmctl"})


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    translate.messages_of(body)
    stream = translate.flag(body, "stream", False)
    translate.check_sampling(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise GatewayError(400, "stream_options must be an object", param="stream_options")
    include_usage = bool(stream and options and options.get("include_usage"))
    lease = await gw.lease(name, mode=GENERATE)
    try:
        endpoint, upstream = await gw.render(lease.runner, translate.openai_chat, body)
    except BaseException:
        gw.scheduler.release(lease)
        raise
    route = "/v1/chat/completions"
    if endpoint == translate.CHAT:
        return await relay(gw, request, lease, route, name, endpoint, upstream, stream, started)
    return await _translated_chat(gw, request, lease, route, name, endpoint, upstream, stream, include_usage, started)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    prompt = body.get("prompt")
    if not isinstance(prompt, (str, list)):
        raise GatewayError(400, "prompt must be a string or a list", param="prompt")
    stream = translate.flag(body, "stream", False)
    translate.check_sampling(body)
    lease = await gw.lease(name, mode=GENERATE)
    try:
        endpoint, upstream = translate.openai_completion(lease.runner, body)
    except BaseException:
        gw.scheduler.release(lease)
        raise
    return await relay(gw, request, lease, "/v1/completions", name, endpoint, upstream, stream, started)


def _tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


def _embedding_input(value: Any) -> bool:
    """OpenAI's shapes of `input`, checked here: llama-server answers anything else (`[null]`) with a 500."""
    if isinstance(value, str) or _tokens(value):
        return True
    return isinstance(value, list) and bool(value) and (all(isinstance(v, str) for v in value)
                                                        or all(_tokens(v) for v in value))


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    started, gw, body, name = await begin_model_request(request)
    if not _embedding_input(body.get("input")):
        raise GatewayError(400, "input must be a string, a non-empty list of strings, a list of token ids or a "
                                "list of such lists", param="input")
    lease = await gw.lease(name, mode=EMBED)
    return await relay(gw, request, lease, "/v1/embeddings", name, "/v1/embeddings", dict(body), False, started)


async def relay(gw: Gateway, request: Request, lease: Lease, route: str, name: str, endpoint: str,
                upstream: dict[str, Any], stream: bool, started: float) -> Response:
    """Forward to the engine's own OpenAI endpoint; the lease is released however this ends."""
    if not stream:
        gw.metrics.in_flight.inc()
        try:
            data = await until_disconnect(request, post_json(gw.client, lease.runner.base_url + endpoint, upstream,
                                                                lease.runner.auth_headers))
        except ClientGone:
            gw.end(lease, route, name, CLIENT_CLOSED, "cancelled")
            return Response(status_code=CLIENT_CLOSED)
        except UpstreamError as exc:
            err = await gw.upstream_error(lease, exc)
            gw.end(lease, route, name, err.status, "engine" if err.status >= 500 else "client")
            return errors.response(err, True)
        data["model"] = name
        p = parse_piece(data)
        gw.metrics.observe_generation(name, ttft=None, prompt_tokens=p.prompt_tokens,
                                      completion_tokens=p.completion_tokens,
                                      generation_seconds=(p.predicted_ms or 0) / 1000 or None)
        gw.end(lease, route, name, 200)
        return JSONResponse(data)
    resp = await gw.open_engine_stream(lease, route, name, endpoint, upstream, dialect=errors.OPENAI)
    if isinstance(resp, Response):
        return resp
    state: dict[str, Any] = {"kind": None}
    body = _relay_events(gw, lease, resp, name, started, state)

    def on_close(cancelled: bool) -> None:
        kind = "cancelled" if cancelled else state["kind"]
        gw.end(lease, route, name, CLIENT_CLOSED if cancelled else 200, kind)

    return EventStream(body, media_type="text/event-stream", on_close=on_close, headers=SSE_HEADERS)


async def _relay_events(gw: Gateway, lease: Lease, resp: UpstreamStream, name: str, started: float,
                        state: dict[str, Any]) -> AsyncIterator[bytes]:
    """SSE relay: the engine's bytes pass through, one write per read of its stream, with the `model` field
    rewritten by a byte substitution (no JSON round trip). Only blocks that carry what metrics need are
    parsed: until the first text (TTFT) and the one with llama-server's `timings` (token counts); and any
    with an `error:` line. However it ends (done, client gone, engine error), the engine connection is closed.
    """
    new_model = b'"model":' + json.dumps(name, ensure_ascii=False).encode()
    old_model: bytes | None = gw.upstream_model(lease.runner)
    first_at: float | None = None
    pending = b""
    try:
        async for data in resp.reads():
            block, pending = sse.split_complete(pending, data)
            if not block:
                continue
            if old_model is None or first_at is None or b'"timings"' in block or b"error:" in block:
                for payload in sse.payloads(block):
                    if payload == b"[DONE]" or (first_at is not None and b'"timings"' not in payload):
                        continue
                    data_ = json.loads(payload)
                    if old_model is None and isinstance(data_.get("model"), str):
                        old_model = b'"model":' + json.dumps(data_["model"], ensure_ascii=False).encode()
                        gw.upstream_names[lease.runner.key] = old_model
                    p = parse_piece(data_)
                    if first_at is None and p.text:
                        first_at = time.monotonic()
                    if "timings" in data_:
                        gw.metrics.observe_generation(
                            name, ttft=None if first_at is None else first_at - started,
                            prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens,
                            generation_seconds=(p.predicted_ms or 0) / 1000 or None)
            if old_model is not None and old_model != new_model:
                block = block.replace(old_model, new_model)
            yield block
    except UpstreamError as exc:
        err = await gw.upstream_error(lease, exc)
        state["kind"] = "engine"
        yield errors.stream_error_line(err, True)
    finally:
        await resp.aclose()


@dataclass
class _Translated:
    """What a translated chat stream has said so far: the answer for a non-streaming reply, how it ended,
    and whether the engine failed part way ("engine", for the request's log line and metrics)."""

    text: list[str] = field(default_factory=list)
    finish: str | None = None
    usage: tuple[int, int] = (0, 0)
    kind: str | None = None
    first_at: float | None = None


async def _translated_chat(gw: Gateway, request: Request, lease: Lease, route: str, name: str, endpoint: str,
                           upstream: dict[str, Any], stream: bool, include_usage: bool, started: float) -> Response:
    """Template/completion-mode engines: their text events become OpenAI chat chunks (an empty answer is
    retried once, as `llmctl run` does: see `answer`)."""
    out = translate.OpenAIChunks(name)
    upstream["stream"] = True
    resp = await gw.open_engine_stream(lease, route, name, endpoint, upstream, dialect=errors.OPENAI)
    if isinstance(resp, Response):
        return resp
    state = _Translated()
    events = answer.batches(resp, lease.runner.base_url + endpoint, answer.retry_body(endpoint, upstream),
                            answer.Outcome(), strip_leading=lease.runner.prompt_mode == COMPLETION,
                            headers=lease.runner.auth_headers)
    chunks = _translated_chunks(gw, lease, name, out, events, state, include_usage, started)
    if stream:
        def on_close(cancelled: bool) -> None:
            gw.end(lease, route, name, CLIENT_CLOSED if cancelled else 200, "cancelled" if cancelled else state.kind)

        return EventStream(chunks, media_type="text/event-stream", on_close=on_close, headers=SSE_HEADERS)
    return await _collected_chat(gw, request, lease, route, name, out, chunks, state)


async def _translated_chunks(gw: Gateway, lease: Lease, name: str, out: translate.OpenAIChunks,
                             events: AsyncGenerator[list[Piece], None], state: _Translated, include_usage: bool,
                             started: float) -> AsyncIterator[bytes]:
    """The engine's pieces as OpenAI chat chunks (one write per batch), then the finish, usage and [DONE]
    events; an engine failure part way is an error event, as OpenAI streams one."""
    try:
        yield out.chunk({"role": "assistant", "content": ""})
        async for batch in events:
            lines = [line for p in batch if (line := _take_piece(gw, name, out, state, p, started))]
            if lines:
                yield b"".join(lines)
        yield out.chunk({}, state.finish or "stop")
        if include_usage:
            yield out.usage_chunk(*state.usage)
        yield b"data: [DONE]\n\n"
    except UpstreamError as exc:
        state.kind = "engine"
        yield errors.stream_error_line(await gw.upstream_error(lease, exc), True)
    finally:
        await events.aclose()


def _take_piece(gw: Gateway, name: str, out: translate.OpenAIChunks, state: _Translated, p: Piece,
                started: float) -> bytes:
    """One engine piece: its text kept and made a content chunk (b"" for none); the last one's counts and
    speed go to /metrics."""
    if p.text:
        if state.first_at is None:
            state.first_at = time.monotonic()
        state.text.append(p.text)
    if p.finish:
        state.finish = p.finish
        state.usage = (p.prompt_tokens or 0, p.completion_tokens or 0)
        gw.metrics.observe_generation(
            name, ttft=None if state.first_at is None else state.first_at - started,
            prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens,
            generation_seconds=(p.predicted_ms or 0) / 1000 or None)
    return out.content_chunk(p.text) if p.text else b""


async def _collected_chat(gw: Gateway, request: Request, lease: Lease, route: str, name: str,
                          out: translate.OpenAIChunks, chunks: AsyncIterator[bytes], state: _Translated) -> Response:
    """A non-streaming reply: the chunks run to the end (or until the client leaves), then one completion."""
    async def collect() -> None:
        async for _ in chunks:
            pass

    try:
        await until_disconnect(request, collect())
    except ClientGone:
        gw.end(lease, route, name, CLIENT_CLOSED, "cancelled")
        return Response(status_code=CLIENT_CLOSED)
    if state.kind:
        gw.end(lease, route, name, 502, "engine")
        return errors.response(GatewayError(502, "the engine failed during generation"), True)
    gw.end(lease, route, name, 200)
    return JSONResponse(out.completion("".join(state.text), state.finish, *state.usage))


def _epoch(text: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
