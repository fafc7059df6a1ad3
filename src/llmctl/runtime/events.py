"""llama-server's answers, from either endpoint, as one type: a `Delta` per stream event or whole response.

`/completion` (template and completion prompt modes) and `/v1/chat/completions` (jinja mode) report text,
the end, token counts and timings in different shapes; the engines, the gateway and the client read Deltas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass
class Delta:
    """One streamed event from llama-server, in either API's shape."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None  # "stop" | "length"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    timings: dict[str, Any] | None = None
    prompt: str | None = None  # what the engine says it evaluated (/completion only)


_STOP_TYPES = {"eos": "stop", "word": "stop", "limit": "length", "none": None}


def parse_event(endpoint: str, data: Mapping[str, Any]) -> Delta:
    """Turn one llama-server JSON object (a stream event or a whole response) into a Delta."""
    if endpoint == "/completion" or "content" in data and "choices" not in data:
        done = bool(data.get("stop"))
        return Delta(
            text=str(data.get("content") or ""),
            done=done,
            finish_reason=_STOP_TYPES.get(str(data.get("stop_type", "none")), "stop") if done else None,
            prompt_tokens=data.get("tokens_evaluated") if done else None,
            completion_tokens=data.get("tokens_predicted") if done else None,
            timings=data.get("timings") if done else None,
            prompt=data.get("prompt") if done else None,
        )
    choices = data.get("choices") or []
    d = Delta()
    if choices:
        c = choices[0]
        part = c.get("delta") or c.get("message") or {}
        d.text = str(part.get("content") or "")
        d.finish_reason = c.get("finish_reason")
    usage = data.get("usage")
    if usage:
        d.prompt_tokens, d.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if data.get("timings"):
        d.timings = data["timings"]
    d.done = bool(usage) or (bool(choices) and "message" in choices[0])
    return d
