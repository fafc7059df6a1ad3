"""Engine events at the byte level: SSE blocks split into payloads, and token events read without a JSON parse.

The relay's cost is per token, so the common case must not build Python objects it does not need: a token
event of llama-server is one of three fixed shapes (an OpenAI chat chunk, an OpenAI text-completion chunk, a
native `/completion` event) whose only varying part, for a plain token, is the text. `piece` recognises those
shapes by their prefix and reads the text with the json module's C string scanner; anything else (the first
and last events, tool calls, reasoning, logprobs, usage, timings) goes through `json.loads` + `parse_piece`.
A prefix match is safe because JSON escapes every quote inside a string: the keys matched cannot be content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Mapping


class UpstreamError(Exception):
    """The engine answered with an error (`status` set) or the connection to it failed (`status` None)."""

    def __init__(self, message: str, status: int | None = None, type_: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type_


@dataclass
class Piece:
    """One upstream event of any llama-server endpoint, reduced to what the translators need."""

    text: str = ""
    finish: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_ms: float | None = None
    predicted_ms: float | None = None
    stop_word: str | None = None  # the stop string that ended the answer (/completion only)


_STOP_TYPES = {"eos": "stop", "word": "stop", "limit": "length", "none": None}


def parse_piece(data: Mapping[str, Any]) -> Piece:
    """Read `/completion`, `/v1/completions` and `/v1/chat/completions` events (stream or not) alike."""
    p = Piece()
    choices = data.get("choices")
    if isinstance(choices, list) and choices:
        c = choices[0]
        delta = c.get("delta") or c.get("message")
        if isinstance(delta, dict):
            p.text = delta.get("content") or ""
        else:
            p.text = c.get("text") or ""
        p.finish = c.get("finish_reason")
    elif "content" in data:
        p.text = data.get("content") or ""
        if data.get("stop"):
            p.finish = _STOP_TYPES.get(str(data.get("stop_type", "eos")), "stop") or "stop"
            p.prompt_tokens = data.get("tokens_evaluated")
            p.completion_tokens = data.get("tokens_predicted")
            p.stop_word = data.get("stopping_word") or None
    usage = data.get("usage")
    if isinstance(usage, dict):
        p.prompt_tokens = usage.get("prompt_tokens")
        p.completion_tokens = usage.get("completion_tokens")
    timings = data.get("timings")
    if isinstance(timings, dict):
        p.prompt_ms = timings.get("prompt_ms")
        p.predicted_ms = timings.get("predicted_ms")
        if p.prompt_tokens is None:
            p.prompt_tokens = timings.get("prompt_n")
        if p.completion_tokens is None:
            p.completion_tokens = timings.get("predicted_n")
    return p


# llama-server's token events: the JSON up to the opening quote of the text, what must follow its closing
# quote, and what the rest must hold (a native event is a token only while "stop" is false)
_TOKEN_SHAPES = (
    ('{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"', '}}],', ""),
    ('{"choices":[{"text":"', ',"index":0,"logprobs":null,"finish_reason":null}],', ""),
    ('{"index":0,"content":"', ',"tokens":[', '"stop":false'),
)


def token_text(s: str) -> str | None:
    """The text of a plain token event of llama-server (JSON text `s`), or None for any other event."""
    for prefix, after, holds in _TOKEN_SHAPES:
        if s.startswith(prefix):
            try:
                text, end = scanstring(s, len(prefix))
            except ValueError:
                return None
            if (s.startswith(after, end) and s.find(holds, end) >= 0 and s.find('"usage"', end) < 0
                    and s.find('"timings"', end) < 0):
                return str(text)
            return None
    return None


def piece(payload: bytes) -> Piece:
    """`parse_piece(json.loads(payload))`, without the JSON parse for plain token events."""
    try:
        s = payload.decode()
    except UnicodeDecodeError:
        raise UpstreamError("the engine sent an event that is not UTF-8") from None
    text = token_text(s)
    if text is not None:
        return Piece(text)
    try:
        data = json.loads(s)
    except ValueError:
        raise UpstreamError(f"the engine sent an event that is not JSON: {s[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"the engine sent an event that is not a JSON object: {s[:200]!r}")
    return parse_piece(data)


def payloads(block: bytes) -> list[bytes]:
    """The `data:` payloads of complete SSE events (`block` ends at an event's blank line or holds whole ones).

    An `error:` line (llama-server's way to fail mid-stream) raises UpstreamError.
    """
    out = []
    for event in block.split(b"\n\n"):
        if event.startswith(b"data: ") and b"\n" not in event:
            out.append(event[6:])
            continue
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                out.append(line[5:].lstrip())
            elif line.startswith(b"error:"):
                raise UpstreamError(line[6:].strip().decode("utf-8", "replace"), 500)
    return out


def split_complete(pending: bytes, data: bytes) -> tuple[bytes, bytes]:
    """(`pending` + `data` up to the end of its last complete event, what follows): events never straddle a write."""
    if pending:
        data = pending + data
    end = data.rfind(b"\n\n") + 2
    if end < 2:
        return b"", data
    return data[:end], data[end:]
