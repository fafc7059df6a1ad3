"""One streamed completion, timed: what the benchmark measures about each request.

Timing follows vLLM's `vllm bench serve` request functions and genai-perf/AIPerf, which agree except for
empty chunks: a chunk counts as a token chunk when it carries text (AIPerf ignores empty responses for
TTFT; llama-server and vLLM close a stream with an empty chunk that holds `finish_reason` and `usage`).

- TTFT: request sent -> first chunk with text.
- ITL: the gaps between consecutive chunks with text (one chunk is one token on llama-server and vLLM).
- E2E: request sent -> the last chunk with `choices` (the stream's end; `[DONE]` carries nothing).
- ISL / OSL: the endpoint's own `usage.prompt_tokens` / `usage.completion_tokens` (asked for with
  `stream_options.include_usage`); without usage, OSL falls back to the number of text chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from llmctl.loadgen.http import Pool, ProtocolError
from llmctl.loadgen.sse import EventTooLarge, SseParser

NO_TEXT = "the stream carried no text"
COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
APIS = {"completions": COMPLETIONS, "chat": CHAT}


@dataclass
class Record:
    """One request's outcome. Times are `time.perf_counter()` seconds; durations derive from them."""

    start: float = 0.0  # request sent
    scheduled: float | None = None  # rate mode: when the arrival process wanted it sent
    first: float | None = None  # first text chunk
    last: float | None = None  # last chunk with choices
    chunk_times: list[float] = field(default_factory=list)  # every text chunk's arrival
    isl: int | None = None  # usage.prompt_tokens
    osl: int | None = None  # usage.completion_tokens (or text chunks)
    expected_isl: int = 0
    expected_osl: int = 0
    error: str | None = None
    status: int | None = None  # HTTP status of a refused request

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float:
        assert self.first is not None
        return self.first - self.start

    @property
    def e2e(self) -> float:
        assert self.last is not None
        return self.last - self.start

    @property
    def itl(self) -> list[float]:
        t = self.chunk_times
        return [b - a for a, b in zip(t, t[1:])]

    @property
    def tpot(self) -> float | None:
        """(E2E - TTFT) / (OSL - 1), vLLM's TPOT and genai-perf's inter_token_latency; None for OSL <= 1."""
        if not self.osl or self.osl < 2:
            return None
        return (self.e2e - self.ttft) / (self.osl - 1)


def request_body(api: str, model: str, prompt: str, max_tokens: int, ignore_eos: bool,
                 extra: dict[str, Any] | None) -> bytes:
    """The JSON body vLLM's benchmark sends (`max_tokens`, `stream`, usage in the stream, `ignore_eos`)."""
    body: dict[str, Any] = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = max_tokens
        body["max_tokens"] = max_tokens  # servers that predate max_completion_tokens
    else:
        body["prompt"] = prompt
        body["max_tokens"] = max_tokens
    if ignore_eos:
        body["ignore_eos"] = True
    if extra:
        body.update(extra)
    return json.dumps(body, ensure_ascii=False).encode()


def _text_of(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return choice.get("text") or ""
    delta = choice.get("delta")
    if not isinstance(delta, dict):  # a hostile or broken endpoint: no text, never an AttributeError
        return ""
    return delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""


def chunk_limit(max_tokens: int) -> int:
    """Text chunks a request may bring: every chunk holds at least one token, so a server sending far more
    than the tokens asked for is broken or hostile, and its request stops there (memory stays bounded)."""
    return 4 * max_tokens + 16


async def stream(pool: Pool, path: str, body: bytes, rec: Record, *, timeout: float,
                 max_event_bytes: int, max_chunks: int) -> Record:
    """Send one streaming request and fill `rec`; failures are recorded, never raised."""
    clock = time.perf_counter
    rec.start = clock()
    try:
        async with asyncio.timeout(timeout):
            async with pool.request("POST", path, body, accept="text/event-stream") as resp:
                if resp.status != 200:
                    text = (await resp.read(64 * 1024)).decode("utf-8", "replace")
                    rec.error = f"HTTP {resp.status}: {_error_message(text)}"
                    rec.status = resp.status
                    return rec
                parser = SseParser(max_event_bytes)
                async for piece in resp.pieces():
                    now = clock()
                    for payload in parser.feed(piece):
                        if payload == b"[DONE]":
                            continue
                        _event(rec, json.loads(payload), now)
                        if len(rec.chunk_times) > max_chunks:
                            rec.error = f"the stream sent over {max_chunks} text chunks"
                        if rec.error:
                            return rec
    except TimeoutError:
        rec.error = f"no complete answer in {timeout:g}s"
    except (OSError, EOFError, ProtocolError, EventTooLarge, asyncio.IncompleteReadError, ValueError) as exc:
        rec.error = f"{type(exc).__name__}: {exc}"[:300]
    except RecursionError:  # an event nested past the JSON parser's stack: the endpoint's fault, this request's
        rec.error = "an event nests too deeply to be JSON the client reads"
    if rec.error is None and rec.first is None:
        rec.error = NO_TEXT
    if rec.error is None and rec.osl is None:
        rec.osl = len(rec.chunk_times)
    return rec


def _event(rec: Record, data: Any, now: float) -> None:
    if not isinstance(data, dict):
        return
    if "error" in data:
        rec.error = f"stream error: {_error_message(json.dumps(data['error']))}"
        return
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        if _text_of(choices[0]):
            if rec.first is None:
                rec.first = now
            rec.chunk_times.append(now)
        rec.last = now
    usage = data.get("usage")
    if isinstance(usage, dict):
        if isinstance(usage.get("prompt_tokens"), int):
            rec.isl = usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            rec.osl = usage["completion_tokens"]


def _error_message(text: str) -> str:
    """The `message` of an OpenAI error body, else the text itself, on one short line."""
    try:
        data = json.loads(text)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        text = str(msg if msg is not None else data)
    except (ValueError, RecursionError):
        pass
    return " ".join(text.split())[:200]
