"""Setting up against one endpoint: which model, does a request work at all, and how to size prompts.

The probes here are also the warm-up (the first request to llama-server pays for its first graph build):
nothing they do is counted in a load point.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmctl.loadgen import prompts as P
from llmctl.loadgen.client import APIS, NO_TEXT, Record, chunk_limit, request_body, stream
from llmctl.loadgen.http import Pool, ProtocolError
from llmctl.loadgen.runner import Item, Limits

PROBE_WORDS = (16, 64)
"""Word counts of the two probes that calibrate prompt length when the endpoint cannot tokenize."""

PREPARE_CONCURRENCY = 8


class EndpointFailed(Exception):
    """The endpoint cannot be benchmarked: unreachable, no model, or a probe request failed (`status`: the
    HTTP status that refused it, if one did)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


async def first_model(pool: Pool) -> str:
    """The first model `GET /v1/models` lists (what vLLM's benchmark does without --model)."""
    try:
        async with pool.request("GET", "/v1/models") as resp:
            body = await resp.read(4 * 1024 * 1024)
            status = resp.status
    except (OSError, ProtocolError, asyncio.IncompleteReadError, TimeoutError) as exc:
        raise EndpointFailed(f"cannot reach {pool.endpoint.base_url}: {exc}") from exc
    if status != 200:
        raise EndpointFailed(f"GET /v1/models answered HTTP {status}; pass --model NAME", status)
    try:
        data = json.loads(body)
        return str(data["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise EndpointFailed("GET /v1/models lists no model; pass --model NAME") from exc


@dataclass
class Session:
    pool: Pool
    api: str  # completions | chat
    model: str
    ignore_eos: bool
    extra: dict[str, Any] | None
    limits: Limits
    probes: list[Record] = field(default_factory=list)  # set-up requests, reported apart from the points

    @property
    def path(self) -> str:
        return APIS[self.api]

    def body(self, prompt: str, max_tokens: int) -> bytes:
        return request_body(self.api, self.model, prompt, max_tokens, self.ignore_eos, self.extra)

    async def probe(self, prompt: str, max_tokens: int = 1) -> Record:
        try:
            rec = await stream(self.pool, self.path, self.body(prompt, max_tokens), Record(),
                               timeout=self.limits.timeout, max_event_bytes=self.limits.max_event_bytes,
                               max_chunks=chunk_limit(max_tokens))
        except OSError as exc:  # connect errors (stream records everything after the connection)
            raise EndpointFailed(f"cannot reach {self.pool.endpoint.base_url}: {exc}") from exc
        self.probes.append(rec)
        if rec.error == NO_TEXT and rec.isl is not None:
            rec.error = None  # a probe needs the prompt's token count; a server may hold one token back (stop strings)
        if rec.error:
            where = f"POST {self.pool.endpoint.base_url}{self.path} (model {self.model})"
            raise EndpointFailed(f"{where}: {rec.error}", rec.status)
        return rec

    async def prompt_source(self, mode: str, words: list[str]) -> P.TokenPrompts | P.WordPrompts:
        if mode in ("auto", "endpoint"):
            try:
                return await self._token_prompts(words)
            except (P.TokenizerUnavailable, OSError, ProtocolError, asyncio.IncompleteReadError) as exc:
                if mode == "endpoint":
                    raise EndpointFailed(f"--tokenizer endpoint: the endpoint cannot tokenize ({exc})") from exc
        return await self._word_prompts(words)

    async def _token_prompts(self, words: list[str]) -> P.TokenPrompts:
        tok = P.EndpointTokenizer(self.pool, self.model)
        vocab = sorted(set(await tok.encode(" ".join(words))))
        text = " ".join(words[:32])
        rec = await self.probe(text)
        if rec.isl is None:
            raise P.TokenizerUnavailable("the endpoint reports no usage.prompt_tokens")
        special = max(0, rec.isl - len(await tok.encode(text)))
        return P.TokenPrompts(tok, vocab, special)

    async def _word_prompts(self, words: list[str]) -> P.WordPrompts:
        rng = random.Random(0)
        points = []
        for n in PROBE_WORDS:
            rec = await self.probe(" ".join(rng.choices(words, k=n)))
            if rec.isl is None:
                raise EndpointFailed("the endpoint reports no usage.prompt_tokens and cannot tokenize, so prompt "
                                     "lengths cannot be set")
            points.append((n, rec.isl))
        intercept, slope = P.fit_line(points)
        return P.WordPrompts(words, intercept, slope)

    async def items(self, source: P.TokenPrompts | P.WordPrompts, lengths: Sequence[tuple[int, int]],
                    seed: int) -> list[Item]:
        """One prepared request per (ISL, OSL); request i's prompt depends only on (seed, i)."""
        gate = asyncio.Semaphore(PREPARE_CONCURRENCY)

        async def build(i: int, isl: int, osl: int) -> Item:
            async with gate:
                text = await source.make(isl, random.Random(f"{seed}:{i}"))
            return Item(self.body(text, osl), isl, osl)

        return list(await asyncio.gather(*(build(i, isl, osl) for i, (isl, osl) in enumerate(lengths))))
