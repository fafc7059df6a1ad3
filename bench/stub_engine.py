#!/usr/bin/env python3
"""A llama-server stand-in that streams pre-made answers as fast as a socket allows, to measure the gateway.

It takes llama-server's command line (so `LLMCTL_LLAMA_SERVER=bench/stub_engine.py llmctl serve` starts it
through the gateway's own engine layer, the same code path as the real engine) and answers the endpoints the
gateway calls: `GET /health`, `POST /v1/chat/completions`, `/v1/completions`, `/completion` (streamed or
not) and `/v1/embeddings`. Every event is shaped byte for byte like llama-server's (captured from the real
llama-server on Gemma 3 270M, build b1-0c1e570): the same keys in the same order, one HTTP chunk per event
(the role and the first token share one, as do the finish and usage events), `Connection: close` when asked.

The answer is `max_tokens` (or `n_predict`; default 64) tokens cycled from a fixed list of real Gemma pieces
(with a quote, a newline and non-ASCII text, so escaping is exercised), finish reason "length".

Pacing (`STUB_ENGINE_TOKEN_MS`, default 0):
- 0: each answer is written whole as soon as the request arrives, in one write: the gateway meets many
  events per read, the least it could ever pay per token;
- N > 0: a decode step every N ms, one token per active stream per step (llama-server's continuous batching):
  the gateway meets about one event per read, as it does in front of a real engine.

With `LLAMA_API_KEY` set, requests without `Authorization: Bearer <key>` get 401, as llama-server does.

With `STUB_ENGINE_ARRIVALS=1` the stub notes, for every generation request, when it had read it whole
(`time.monotonic()`: CLOCK_MONOTONIC, the same clock in every process of the machine) and the tag
`admit-N` its body carries; `GET /stub/arrivals` answers `[[tag, time], ...]` and forgets them. That is
`bench/admission.py`'s view of when a request reached the engine.
Only the standard library (uvloop if importable): it runs under any python3 on the GPU machine too.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import string
import sys
import time
from typing import Any

FINGERPRINT = "b1-0c1e570"
PIECES = [" The", " model", " is", " a", " ", "2", ",", " there", " was", " little", " girl", "\n", ' "quoted"',
          " café", " 日本", " once", " upon", " time", "."]
TOKEN_IDS = [669, 2028, 563, 496, 236743, 236778, 236764, 993, 691, 2268, 3953, 107, 623, 38544, 79121, 3622,
             3324, 990, 236761]
STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\nX-Accel-Buffering: no\r\n"
               b"Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n")
JSON_HEAD = b"HTTP/1.1 %d %s\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n"
DEFAULT_TOKENS = 64
MAX_TOKENS = 100_000
TAG = re.compile(rb"admit-(\d+)")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj).encode() + b"\n\n"


def _timings(prompt_n: int, n: int) -> dict[str, Any]:
    return {"cache_n": 0, "prompt_n": prompt_n, "prompt_ms": 3.5, "prompt_per_token_ms": 3.5 / max(1, prompt_n),
            "prompt_per_second": prompt_n / 0.0035, "predicted_n": n, "predicted_ms": n * 1.0,
            "predicted_per_token_ms": 1.0, "predicted_per_second": 1000.0}


def _usage(prompt_n: int, n: int) -> dict[str, Any]:
    return {"completion_tokens": n, "prompt_tokens": prompt_n, "total_tokens": prompt_n + n,
            "prompt_tokens_details": {"cached_tokens": 0}}


class Answer:
    """One request's answer as the chunks llama-server would write, in order."""

    def __init__(self, endpoint: str, body: dict[str, Any], alias: str) -> None:
        self.endpoint = endpoint
        self.alias = alias
        self.stream = bool(body.get("stream"))
        n = body.get("max_tokens", body.get("max_completion_tokens", body.get("n_predict")))
        if endpoint == "/completion" and body.get("n_predict") is not None:
            n = body["n_predict"]
        self.n = DEFAULT_TOKENS if not isinstance(n, int) or n < 0 else min(n, MAX_TOKENS)
        opts = body.get("stream_options")
        self.include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        prompt = body.get("prompt") or body.get("messages") or ""
        self.prompt_n = max(1, len(_dumps(prompt)) // 4)
        self.id = "chatcmpl-" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
        self.created = int(time.time())

    def _piece(self, i: int) -> str:
        return PIECES[i % len(PIECES)]

    def _common(self, obj: str) -> dict[str, Any]:
        return {"created": self.created, "id": self.id, "model": self.alias, "system_fingerprint": FINGERPRINT,
                "object": obj}

    # -- streamed: one chunk per token, then the tail --------------------------------------------------------
    def token_chunk(self, i: int) -> bytes:
        text = self._piece(i)
        if self.endpoint == "/v1/chat/completions":
            ev = _sse({"choices": [{"finish_reason": None, "index": 0, "delta": {"content": text}}],
                       **self._common("chat.completion.chunk")})
            if i == 0:
                ev = _sse({"choices": [{"finish_reason": None, "index": 0,
                                        "delta": {"role": "assistant", "content": None}}],
                           **self._common("chat.completion.chunk")}) + ev
        elif self.endpoint == "/v1/completions":
            ev = _sse({"choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}],
                       "created": self.created, "model": self.alias, "system_fingerprint": FINGERPRINT,
                       "object": "text_completion", "id": self.id})
        else:
            ev = _sse({"index": 0, "content": text, "tokens": [TOKEN_IDS[i % len(TOKEN_IDS)]], "stop": False,
                       "id_slot": -1, "tokens_predicted": i + 1, "tokens_evaluated": self.prompt_n})
        return _chunk(ev)

    def tail_chunks(self) -> bytes:
        n, p = self.n, self.prompt_n
        if self.endpoint == "/v1/chat/completions":
            finish = {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}],
                      **self._common("chat.completion.chunk")}
            if self.include_usage:
                last = _sse(finish) + _sse({"choices": [], **self._common("chat.completion.chunk"),
                                            "usage": _usage(p, n), "timings": _timings(p, n)})
            else:
                last = _sse({**finish, "timings": _timings(p, n)})
        elif self.endpoint == "/v1/completions":
            last = _sse({"choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}],
                         "created": self.created, "model": self.alias, "system_fingerprint": FINGERPRINT,
                         "object": "text_completion", "usage": _usage(p, n), "id": self.id,
                         "timings": _timings(p, n)})
        else:
            last = _sse(self._native_final("", []))
        done = b"" if self.endpoint == "/completion" else _chunk(b"data: [DONE]\n\n")
        return _chunk(last) + done + b"0\r\n\r\n"

    def _native_final(self, content: str, tokens: list[int]) -> dict[str, Any]:
        return {"index": 0, "content": content, "tokens": tokens, "id_slot": 0, "stop": True, "model": self.alias,
                "tokens_predicted": self.n, "tokens_evaluated": self.prompt_n,
                "generation_settings": {"n_predict": self.n, "stream": self.stream},
                "prompt": "", "has_new_line": False, "truncated": False, "stop_type": "limit",
                "stopping_word": "", "tokens_cached": self.prompt_n + self.n,
                "timings": _timings(self.prompt_n, self.n)}

    # -- not streamed ----------------------------------------------------------------------------------------
    def whole(self) -> bytes:
        text = "".join(self._piece(i) for i in range(self.n))
        n, p = self.n, self.prompt_n
        if self.endpoint == "/v1/chat/completions":
            obj = {"choices": [{"finish_reason": "length", "index": 0,
                                "message": {"role": "assistant", "content": text}}],
                   "created": self.created, "model": self.alias, "system_fingerprint": FINGERPRINT,
                   "object": "chat.completion", "usage": _usage(p, n), "id": self.id, "timings": _timings(p, n)}
        elif self.endpoint == "/v1/completions":
            obj = {"choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "length"}],
                   "created": self.created, "model": self.alias, "system_fingerprint": FINGERPRINT,
                   "object": "text_completion", "usage": _usage(p, n), "id": self.id, "timings": _timings(p, n)}
        else:
            obj = self._native_final(text, [])
        return _dumps(obj).encode()


def _embeddings(body: dict[str, Any], alias: str) -> bytes:
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    data = [{"embedding": [0.0625] * 8, "index": i, "object": "embedding"} for i in range(len(items))]
    return _dumps({"model": alias, "object": "list", "usage": {"prompt_tokens": len(items), "total_tokens": len(items)},
                   "data": data}).encode()


class Engine:
    """The HTTP side: keep-alive HTTP/1.1, one task per connection, an optional shared decode step."""

    def __init__(self, alias: str, token_ms: float, api_key: str | None, arrivals: bool = False) -> None:
        self.alias = alias
        self.token_ms = token_ms
        self.arrivals: list[tuple[int, float]] | None = [] if arrivals else None
        self.auth = f"Bearer {api_key}".encode() if api_key else None
        self.active: set[asyncio.Queue[None]] = set()
        self.ticker: asyncio.Task[None] | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path = (lines[0].split(" ") + ["", ""])[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                raw = await reader.readexactly(int(headers.get("content-length") or 0))
                if self.arrivals is not None and method == "POST":
                    tag = TAG.search(raw)
                    self.arrivals.append((int(tag.group(1)) if tag else -1, time.monotonic()))
                close = headers.get("connection", "").lower() == "close"
                keep = await self.respond(method, path.split("?")[0], headers, raw, writer, close)
                if close or not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def _json(self, writer: asyncio.StreamWriter, status: int, payload: bytes, close: bool) -> None:
        reason = {200: b"OK", 401: b"Unauthorized", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"Error")
        writer.write(JSON_HEAD % (status, reason, len(payload)) + (b"Connection: close\r\n" if close else b"")
                     + b"\r\n" + payload)

    async def respond(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                      writer: asyncio.StreamWriter, close: bool) -> bool:
        if method == "GET" and path == "/health":
            self._json(writer, 200, b'{"status":"ok"}', close)
            return True
        if method == "GET" and path == "/stub/arrivals" and self.arrivals is not None:
            self._json(writer, 200, json.dumps(self.arrivals).encode(), close)
            self.arrivals.clear()
            return True
        if self.auth is not None and headers.get("authorization", "").encode() != self.auth:
            self._json(writer, 401, b'{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}',
                       close)
            return True
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions", "/completion", "/v1/embeddings"):
            self._json(writer, 404, b'{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}', close)
            return True
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(writer, 400, b'{"error":{"code":400,"message":"invalid JSON","type":"invalid_request_error"}}',
                       close)
            return True
        if path == "/v1/embeddings":
            self._json(writer, 200, _embeddings(body, self.alias), close)
            return True
        answer = Answer(path, body, self.alias)
        if not answer.stream:
            self._json(writer, 200, answer.whole(), close)
            return True
        writer.write(STREAM_HEAD + (b"Connection: close\r\n" if close else b"") + b"\r\n")
        if self.token_ms <= 0:
            writer.write(b"".join(answer.token_chunk(i) for i in range(answer.n)) + answer.tail_chunks())
            await writer.drain()
            return True
        return await self._paced(answer, writer)

    async def _paced(self, answer: Answer, writer: asyncio.StreamWriter) -> bool:
        """One token per decode step, the step shared by every stream (as a batch decode is)."""
        step: asyncio.Queue[None] = asyncio.Queue()
        self.active.add(step)
        if self.ticker is None or self.ticker.done():
            self.ticker = asyncio.create_task(self._tick())
        try:
            for i in range(answer.n):
                await step.get()
                if writer.is_closing():
                    return False
                writer.write(answer.token_chunk(i))
            writer.write(answer.tail_chunks())
            await writer.drain()
            return True
        finally:
            self.active.discard(step)

    async def _tick(self) -> None:
        interval = self.token_ms / 1000
        next_at = time.monotonic()
        while self.active:
            for q in list(self.active):
                q.put_nowait(None)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def parse_args(argv: list[str]) -> dict[str, str]:
    """The llama-server flags that matter here; every other flag (and its value) is accepted and ignored."""
    out = {"host": "127.0.0.1", "port": "8080", "alias": "stub"}
    names = {"--host": "host", "--port": "port", "--alias": "alias", "-a": "alias", "-m": "model", "--model": "model"}
    i = 0
    while i < len(argv):
        if argv[i] in names and i + 1 < len(argv):
            out[names[argv[i]]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return out


async def serve(args: dict[str, str]) -> None:
    engine = Engine(args["alias"], float(os.environ.get("STUB_ENGINE_TOKEN_MS") or 0),
                    os.environ.get("LLAMA_API_KEY") or None, os.environ.get("STUB_ENGINE_ARRIVALS") == "1")
    server = await asyncio.start_server(engine.handle, args["host"], int(args["port"]), limit=1 << 20, backlog=1024)
    print(f"main: server is listening on http://{args['host']}:{args['port']} (stub engine, model {args.get('model')})",
          flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    if "--version" in sys.argv[1:]:
        print("version: 0 (build 0, commit stub)\nbuilt with the stub engine (bench/stub_engine.py)")
        return
    args = parse_args(sys.argv[1:])
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
