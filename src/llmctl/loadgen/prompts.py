"""Prompts of a given length in the endpoint's own tokens.

Two ways, picked per endpoint:

- `endpoint`: the server tokenizes (`POST /tokenize` + `/detokenize`: llama-server and vLLM have both;
  the request carries both dialects' field names). Prompts are random tokens drawn from the tokenized word
  corpus, decoded, re-encoded and trimmed to the target length, as vLLM's random dataset does; the
  special tokens the server adds (BOS) are measured once and counted in the length.
- `usage`: no tokenizer endpoint (llmctl serve, most hosted APIs). Prompts are random words; two probe
  requests measure `usage.prompt_tokens` for two word counts, and the line through them sizes prompts.
In both, the ISL a result reports is the endpoint's `usage.prompt_tokens` for each request.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from llmctl.loadgen.http import Pool

TOKENIZER_MODES = ("auto", "endpoint", "usage")
ADJUST_ROUNDS = 4


def corpus_words() -> list[str]:
    text = resources.files("llmctl").joinpath("data/loadgen/words.txt").read_text(encoding="utf-8")
    return [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]


class TokenizerUnavailable(Exception):
    pass


async def _post_json(pool: Pool, path: str, body: dict[str, Any]) -> Any:
    async with pool.request("POST", path, json.dumps(body).encode()) as resp:
        data = await resp.read(16 * 1024 * 1024)
        if resp.status != 200:
            raise TokenizerUnavailable(f"{path}: HTTP {resp.status}")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise TokenizerUnavailable(f"{path}: not JSON") from exc


@dataclass
class EndpointTokenizer:
    """`/tokenize` and `/detokenize` of a llama-server or vLLM endpoint."""

    pool: Pool
    model: str

    async def encode(self, text: str) -> list[int]:
        data = await _post_json(self.pool, "/tokenize", {
            "model": self.model, "content": text, "prompt": text, "add_special": False, "add_special_tokens": False})
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise TokenizerUnavailable("/tokenize: no token list")
        ids = [t if isinstance(t, int) else t.get("id") if isinstance(t, dict) else None for t in tokens]
        if any(not isinstance(i, int) for i in ids):
            raise TokenizerUnavailable("/tokenize: tokens are not integers")
        return ids  # type: ignore[return-value]

    async def decode(self, ids: list[int]) -> str:
        data = await _post_json(self.pool, "/detokenize", {"model": self.model, "tokens": ids})
        text = data.get("content", data.get("prompt")) if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise TokenizerUnavailable("/detokenize: no text")
        return text


@dataclass
class TokenPrompts:
    """Random-token prompts, exact to the endpoint's tokenizer."""

    tok: EndpointTokenizer
    vocab: list[int]  # token ids of the word corpus: ordinary text tokens only
    special: int  # tokens the server adds to every prompt (BOS), from a probe's usage
    kind: str = "endpoint"

    async def make(self, isl: int, rng: random.Random) -> str:
        target = max(1, isl - self.special)
        ids = rng.choices(self.vocab, k=target)
        text = await self.tok.decode(ids)
        for _ in range(ADJUST_ROUNDS):  # decode -> encode can merge or split tokens at the seams
            ids = await self.tok.encode(text)
            if len(ids) == target:
                break
            ids = ids[:target] if len(ids) > target else ids + rng.choices(self.vocab, k=target - len(ids))
            text = await self.tok.decode(ids)
        return text


@dataclass
class WordPrompts:
    """Random-word prompts sized by a line fitted to the endpoint's reported prompt tokens."""

    words: list[str]
    intercept: float  # prompt tokens of an empty prompt (special tokens)
    per_word: float  # prompt tokens per corpus word
    kind: str = "usage"

    def words_for(self, isl: int) -> int:
        return max(1, round((isl - self.intercept) / self.per_word))

    async def make(self, isl: int, rng: random.Random) -> str:
        return " ".join(rng.choices(self.words, k=self.words_for(isl)))


def fit_line(points: list[tuple[int, int]]) -> tuple[float, float]:
    """(intercept, slope) of prompt tokens over word count through two or more probes."""
    (w1, t1), (w2, t2) = points[0], points[-1]
    slope = (t2 - t1) / (w2 - w1) if w2 != w1 else 0.0
    if slope <= 0:
        slope = max(t2 / max(w2, 1), 0.5)
    return t1 - slope * w1, slope
