"""One generation for a translated API (Responses, Anthropic Messages): stream it or collect it, and do the
bookkeeping every model route does.

The translator is a state machine fed with the engine's `ChatDelta`s; it writes the client's events (when
streaming) and builds the final object (always: the non-streamed answer and the last streamed event are the
same object). This module owns everything around it, as `routes.openai._translated_chat` does for chat: the
request counted in flight, time to first token and token counts for /metrics, the lease released however
the request ends (done, engine error, client gone), and engine errors in the client's dialect.
"""

from __future__ import annotations

import time
from typing import Any, AsyncGenerator, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmctl.runtime.scheduler import Lease
from llmctl.server import chatbridge, errors
from llmctl.server.chatbridge import ChatDelta, EngineRequest, Totals
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway
from llmctl.server.proxy import SSE_HEADERS, ClientGone, EventStream, UpstreamError, until_disconnect

CLIENT_CLOSED = 499  # nginx's code for "client closed request": only ever seen in metrics


class Translator(Protocol):
    """What a dialect's state machine offers the driver. Methods return the SSE bytes to send (b"" when the
    request is not streamed or there is nothing to say)."""

    dialect: str

    def begin(self) -> bytes: ...

    def feed(self, delta: ChatDelta, totals: Totals) -> bytes: ...

    def finish(self, totals: Totals) -> bytes: ...

    def fail(self, err: GatewayError) -> bytes: ...

    def result(self) -> dict[str, Any]: ...


async def prepare(gw: Gateway, name: str, chat: dict[str, Any]) -> tuple[Lease, EngineRequest]:
    """Lease the model for `chat` and build its engine request, as /v1/chat/completions does; tools the model
    cannot call are refused before the lease, and the lease goes back if the request cannot be built."""
    await chatbridge.check_tools(gw, name, chat)
    lease = await gw.lease(name)
    try:
        return lease, await gw.render(lease.runner, chatbridge.engine_request, chat)
    except BaseException:
        gw.scheduler.release(lease)
        raise


async def run(gw: Gateway, request: Request, lease: Lease, route: str, name: str, engine: EngineRequest,
              tr: Translator, *, stream: bool, started: float) -> Response:
    """Send `engine` to the leased engine and answer through `tr`; the lease is released however this ends."""
    resp = await gw.open_engine_stream(lease, route, name, engine.endpoint, engine.body, dialect=tr.dialect)
    if isinstance(resp, Response):
        return resp
    state: dict[str, Any] = {"error": None}
    deltas = chatbridge.deltas(resp, lease.runner.base_url, engine, lease.runner.auth_headers)
    body = _events(gw, lease, deltas, tr, name, started, state)
    if stream:
        def on_close(cancelled: bool) -> None:
            kind = "cancelled" if cancelled else ("engine" if state["error"] else None)
            gw.end(lease, route, name, CLIENT_CLOSED if cancelled else 200, kind)

        return EventStream(body, media_type="text/event-stream", on_close=on_close, headers=SSE_HEADERS)

    async def collect() -> None:
        try:
            async for _ in body:
                pass
        finally:
            await body.aclose()  # a client gone mid-answer: the engine connection closes now, not at GC

    try:
        await until_disconnect(request, collect())
    except ClientGone:
        gw.end(lease, route, name, CLIENT_CLOSED, "cancelled")
        return Response(status_code=CLIENT_CLOSED)
    err: GatewayError | None = state["error"]
    if err is not None:
        gw.end(lease, route, name, err.status, "engine" if err.status >= 500 else "client")
        return errors.response(err, tr.dialect)
    gw.end(lease, route, name, 200)
    return JSONResponse(tr.result())


async def _events(gw: Gateway, lease: Lease, deltas: AsyncGenerator[ChatDelta, None], tr: Translator, name: str,
                  started: float, state: dict[str, Any]) -> AsyncGenerator[bytes, None]:
    """Engine deltas through the translator; an engine failure ends the stream with the dialect's error event.
    The engine connection is closed on the way out, however the stream ends."""
    totals = Totals()
    first_at: float | None = None
    try:
        out = tr.begin()
        if out:
            yield out
        async for d in deltas:
            totals.add(d)
            if first_at is None and (d.text or d.reasoning or d.tools):
                first_at = time.monotonic()
            out = tr.feed(d, totals)
            if out:
                yield out
        gw.metrics.observe_generation(
            name, ttft=None if first_at is None else first_at - started, prompt_tokens=totals.prompt_tokens,
            completion_tokens=totals.completion_tokens, generation_seconds=(totals.predicted_ms or 0) / 1000 or None)
        out = tr.finish(totals)
        if out:
            yield out
    except UpstreamError as exc:
        err = await gw.upstream_error(lease, exc)
        state["error"] = err
        out = tr.fail(err)
        if out:
            yield out
    finally:
        await deltas.aclose()



async def count(gw: Gateway, name: str, route: str, chat: dict[str, Any], dialect: str) -> int | Response:
    """The engine's prompt-token count for `chat` (loading the model if it must, as a generation would); an
    error comes back as the Response to send instead, in `dialect`."""
    await chatbridge.check_tools(gw, name, chat)
    lease = await gw.lease(name)
    gw.metrics.in_flight.inc()
    try:
        tokens = await chatbridge.count_tokens(gw, lease.runner, chat)
    except UpstreamError as exc:
        err = await gw.upstream_error(lease, exc)
    except GatewayError as exc:
        err = exc
    else:
        gw.end(lease, route, name, 200)
        return tokens
    gw.end(lease, route, name, err.status, "engine" if err.status >= 500 else "client")
    return errors.response(err, dialect)
