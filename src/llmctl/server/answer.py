"""One generated answer from an engine, as pieces, never empty where a retry can help.

A base model in completion mode sometimes ends its answer at once: greedy, its first token for some
prompts is the blank line that closes a Q/A turn. `llmctl run` on its own engine retries such a reply once
with end-of-text ignored (`CompletionRequest.fallback`); the gateway does the same here, so `run` through
a running `serve`, Ollama clients and OpenAI clients of a template/completion-mode model get an answer too.

To retry without the client ever seeing the empty attempt, leading whitespace and the attempt's metadata
(finish reason, counts) are held back until real text arrives; once it does, everything streams through
as it comes. Without a retry body the pieces pass through untouched (raw prompts: the model's answer is
the answer, even an empty one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

from llmctl.server.proxy import UpstreamStream, open_stream
from llmctl.server.sse import Piece, piece


def retry_body(endpoint: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fallback request for an empty answer to `body` (None when `body` is already a fallback)."""
    from llmctl.runtime.prompt import CompletionRequest

    retry = CompletionRequest("", endpoint, dict(body)).fallback()
    return None if retry is None else retry.body


@dataclass
class Outcome:
    """What the caller may want to know once the pieces are consumed."""

    started: bool = False  # real (non-whitespace) text was sent
    retried: bool = False  # the first attempt was empty and the fallback ran


async def batches(first: UpstreamStream, url: str, retry: dict[str, Any] | None, outcome: Outcome, *,
                  strip_leading: bool = False, headers: Mapping[str, str] | None = None) -> AsyncIterator[list[Piece]]:
    """Parsed events of `first`, then of one retry (POST `retry` to `url`) if `first` had no real text; one
    list per read of the engine's stream (so a writer can answer a read with one write), never empty.

    `headers` go with the retry (the engine's key). `strip_leading` drops the whitespace before the first word
    (completion mode's "A:" transcript leaves a space there that is not part of the answer). Every stream opened is closed however this ends;
    `UpstreamError` from either attempt propagates to the caller.
    """
    hold = retry is not None
    resp: UpstreamStream | None = first
    while resp is not None:
        held: list[Piece] = []
        pending = ""
        try:
            async for payloads in resp.batches():
                out: list[Piece] = []
                for payload in payloads:
                    if payload == b"[DONE]":
                        continue
                    p = piece(payload)
                    if outcome.started or not hold:
                        out.append(p)
                        continue
                    pending += p.text
                    if not pending.strip():
                        p.text = ""
                        held.append(p)
                        continue
                    outcome.started = True
                    p.text = pending.lstrip() if strip_leading else pending
                    out += held
                    held = []
                    out.append(p)
                if out:
                    yield out
        finally:
            await resp.aclose()
        resp = None
        if outcome.started or retry is None:
            if held:
                yield held
            return
        outcome.retried = True
        resp = await open_stream(url, retry, headers)
        retry = None


async def pieces(first: UpstreamStream, url: str, retry: dict[str, Any] | None, outcome: Outcome, *,
                 strip_leading: bool = False, headers: Mapping[str, str] | None = None) -> AsyncIterator[Piece]:
    """`batches`, one Piece at a time."""
    events = batches(first, url, retry, outcome, strip_leading=strip_leading, headers=headers)
    try:
        async for batch in events:
            for p in batch:
                yield p
    finally:
        await events.aclose()  # type: ignore[attr-defined]
