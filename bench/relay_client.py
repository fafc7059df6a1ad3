"""A lean streaming load generator: raw asyncio sockets, HTTP/1.1 keep-alive, tokens counted with one regex.

The benchmarks need a client that costs far less per token than the server it measures: at 64 streams and
10,000+ tok/s an httpx client that JSON-parses every event needs a core of its own and would become the
bottleneck it is meant to expose. This one reads whole chunks, finds the first token with a regex (TTFT),
and counts tokens once per answer with a regex over the body: a few µs per token.

`run_streams(url, path, body, streams, requests)` runs `streams` workers, each sending `requests` requests
back to back on its own keep-alive connection, and returns a `Result`. Works on SSE (OpenAI), NDJSON
(Ollama) and plain JSON answers; a wrong status, a short answer or a broken stream is a failed request.
Tokens are the engine's count where the stream carries one (usage, eval_count), else the token events.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# a token: a non-empty content/text/response string (role-only and final events carry null or "")
TOKEN = re.compile(rb'"(?:content|text|response)": ?"(?!")')  # compact JSON, or json.dumps' default
# the engine's own count in a stream's last events (OpenAI usage, Ollama eval_count): it also counts tokens
# whose text is empty (a byte of an unfinished UTF-8 character, which a random-weight model emits)
COUNT = re.compile(rb'"(?:completion_tokens|eval_count)": ?(\d+)')
DONE = (b"data: [DONE]", b'"done":true', b'"stop":true')


@dataclass
class Result:
    streams: int
    requests: int = 0
    ok: int = 0
    failed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class Conn:
    """One keep-alive connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buf = bytearray()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        self.buf.clear()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def _more(self) -> None:
        assert self.reader is not None
        data = await self.reader.read(1 << 18)  # ConnectionResetError is a ConnectionError too
        if not data:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buf += data

    async def request(self, head: bytes, payload: bytes) -> tuple[int, bytes, float | None]:
        """Send one request; return (status, body, time of the first token or None).

        A kept-alive connection that the server closed before answering (llama-server drops idle ones) is
        reopened and the request sent once more, as HTTP clients do: the server never saw it.
        """
        reused = self.writer is not None
        if self.writer is None:
            await self.open()
        assert self.writer is not None
        self.writer.write(head + payload)
        buf = self.buf
        try:
            while (end := buf.find(b"\r\n\r\n")) < 0:
                await self._more()
        except ConnectionError:
            if not reused or buf:
                raise
            self.close()
            return await self.request(head, payload)
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:end + 4]
        status = int(lines[0].split(b" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
        first: float | None = None
        parts: list[bytes] = []
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while True:
                while (eol := buf.find(b"\r\n")) < 0:
                    await self._more()
                size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
                while len(buf) < eol + 2 + size + 2:
                    await self._more()
                piece = bytes(buf[eol + 2:eol + 2 + size])
                del buf[:eol + 2 + size + 2]
                if size == 0:
                    break
                if first is None and TOKEN.search(piece):
                    first = time.perf_counter()
                parts.append(piece)
        else:
            length = int(headers.get(b"content-length", b"0"))
            while len(buf) < length:
                await self._more()
            parts.append(bytes(buf[:length]))
            del buf[:length]
            first = time.perf_counter()
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, b"".join(parts), first


def count_tokens(body: bytes, stream: bool) -> int:
    """Tokens in one answer: token events of a stream, or the usage count of a whole answer."""
    if stream:
        counted = COUNT.findall(body[-4096:])
        return int(counted[-1]) if counted else len(TOKEN.findall(body))
    data = json.loads(body)
    usage = data.get("usage") or {}
    return int(usage.get("completion_tokens") or data.get("eval_count") or data.get("tokens_predicted") or 0)


async def run_streams(url: str, path: str, body: dict[str, Any], streams: int, requests: int, *,
                      expect: int | None = None, headers: dict[str, str] | None = None) -> Result:
    """`streams` workers x `requests` requests each; `expect`: tokens every answer must have."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    stream = body.get("stream", path.startswith("/api/"))
    res = Result(streams)

    async def worker() -> None:
        conn = Conn(host, port)
        try:
            for _ in range(requests):
                res.requests += 1
                start = time.perf_counter()
                try:
                    status, answer, first = await conn.request(head, payload)
                    if status != 200:
                        raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
                    n = count_tokens(answer, stream)
                    if stream and not any(d in answer[-4096:] for d in DONE):
                        raise RuntimeError(f"the stream did not finish: ...{answer[-200:]!r}")
                    if expect is not None and n != expect:
                        raise RuntimeError(f"{n} tokens, expected {expect}")
                except Exception as exc:  # a failed request is a result
                    conn.close()
                    res.failed += 1
                    res.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                res.ok += 1
                res.tokens += n
                res.ttft.append((first or time.perf_counter()) - start)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(streams)))
    res.seconds = time.perf_counter() - t0
    return res
