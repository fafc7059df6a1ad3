"""The engine's answer as an Anthropic Message: the typed SSE events while it streams, the object at the end.

Event sequence (Anthropic's): `message_start` (the message with empty content and the prompt's token count),
per content block `content_block_start`, `content_block_delta`s (`text_delta`, `thinking_delta`,
`input_json_delta`), `content_block_stop`; then `message_delta` (`stop_reason`, `stop_sequence`, usage) and
`message_stop`. Every event carries its `event:` line, which Anthropic's SDKs dispatch on.

Blocks follow the engine: reasoning (`thinking`), text, and one `tool_use` block per tool call, each new kind
closing the block before it. `message_start` waits for the engine's first event, which in jinja mode carries
the prompt's token count; `usage` at the end is the engine's own count.

`stop_reason`: "tool_use" when the answer has tool calls, "max_tokens" at the token limit, "stop_sequence"
(with `stop_sequence`) when one of the request's `stop_sequences` ended it, else "end_turn". llama-server's
chat endpoint (jinja mode) does not say which stop string ended an answer, so there a stop sequence reads
"end_turn", as on llama-server's own /v1/messages.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from llmctl.server import errors
from llmctl.server.chatbridge import ChatDelta, ToolFragment, Totals, sse
from llmctl.server.errors import GatewayError

log = logging.getLogger("llmctl.gateway")

_DELTA_KEYS = {"text": ("text_delta", "text"), "thinking": ("thinking_delta", "thinking"),
               "tool_use": ("input_json_delta", "partial_json")}


def stop_reason(totals: Totals, stops: tuple[str, ...], tool_use: bool) -> tuple[str, str | None]:
    """Anthropic's (stop_reason, stop_sequence) for how the engine ended the answer."""
    if totals.finish == "length":
        return "max_tokens", None
    if tool_use:
        return "tool_use", None
    if totals.stop_word is not None and totals.stop_word in stops:
        return "stop_sequence", totals.stop_word
    return "end_turn", None


class MessageStream:
    """State machine from engine deltas to Anthropic events; `stream=False` only builds the final Message."""

    dialect = errors.ANTHROPIC

    def __init__(self, model: str, stop_sequences: tuple[str, ...], *, stream: bool) -> None:
        self.id = "msg_" + uuid.uuid4().hex[:24]
        self.model = model
        self.stops = stop_sequences
        self.stream = stream
        self.blocks: list[dict[str, Any]] = []  # kind, id, name, parts (text pieces)
        self.tool_blocks: dict[int, int] = {}  # the engine's tool-call index -> block index
        self.started = False
        self._prefix = b""  # the start of the open block's delta event, ready for its JSON-encoded piece
        self._message: dict[str, Any] | None = None

    # -- events ----------------------------------------------------------------------------------------------
    def _start(self, totals: Totals) -> bytes:
        self.started = True
        if not self.stream:
            return b""
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": totals.prompt_tokens or 0, "output_tokens": 0}}
        return sse("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, head: dict[str, Any], **extra: Any) -> bytes:
        """Close the open block and open a new one of `kind`."""
        out = self._close()
        index = len(self.blocks)
        self.blocks.append({"kind": kind, "parts": [], **extra})
        if not self.stream:
            return out
        delta_type, key = _DELTA_KEYS[kind]
        self._prefix = (f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{index},'
                        f'"delta":{{"type":"{delta_type}","{key}":').encode()
        return out + sse("content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": head})

    def _close(self) -> bytes:
        if not self.blocks or self.blocks[-1].get("closed"):
            return b""
        self.blocks[-1]["closed"] = True
        if not self.stream:
            return b""
        return sse("content_block_stop", {"type": "content_block_stop", "index": len(self.blocks) - 1})

    def _append(self, index: int, piece: str) -> bytes:
        self.blocks[index]["parts"].append(piece)
        if not self.stream:
            return b""
        return self._prefix + json.dumps(piece, ensure_ascii=False).encode() + b"}}\n\n"

    def _piece(self, kind: str, piece: str) -> bytes:
        out = b""
        if not self.blocks or self.blocks[-1]["kind"] != kind or self.blocks[-1].get("closed"):
            head = {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": "",
                                                                           "signature": ""}
            out = self._open(kind, head)
        return out + self._append(len(self.blocks) - 1, piece)

    def _tool(self, frag: ToolFragment) -> bytes:
        out = b""
        index = self.tool_blocks.get(frag.index)
        if index is None:
            call_id = frag.id or "toolu_" + uuid.uuid4().hex[:24]
            out = self._open("tool_use", {"type": "tool_use", "id": call_id, "name": frag.name or "", "input": {}},
                             id=call_id, name=frag.name or "")
            index = self.tool_blocks[frag.index] = len(self.blocks) - 1
        elif frag.name and not self.blocks[index]["name"]:
            self.blocks[index]["name"] = frag.name
        if frag.arguments:
            if index != len(self.blocks) - 1:  # a late fragment of an earlier call: keep it, no event
                self.blocks[index]["parts"].append(frag.arguments)
            else:
                out += self._append(index, frag.arguments)
        return out

    # -- the driver's interface --------------------------------------------------------------------------------
    def begin(self) -> bytes:
        return b""  # message_start waits for the engine's first event (the prompt's token count)

    def feed(self, d: ChatDelta, totals: Totals) -> bytes:
        out = b"" if self.started else self._start(totals)
        if d.reasoning:
            out += self._piece("thinking", d.reasoning)
        if d.text:
            out += self._piece("text", d.text)
        for frag in d.tools:
            out += self._tool(frag)
        return out

    def finish(self, totals: Totals) -> bytes:
        out = b"" if self.started else self._start(totals)
        out += self._close()
        self._message = message = self._build(totals)
        if not self.stream:
            return b""
        usage = {"input_tokens": message["usage"]["input_tokens"], "output_tokens": message["usage"]["output_tokens"]}
        out += sse("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}, "usage": usage})
        return out + sse("message_stop", {"type": "message_stop"})

    def fail(self, err: GatewayError) -> bytes:
        return errors.stream_error_line(err, errors.ANTHROPIC) if self.stream else b""

    def result(self) -> dict[str, Any]:
        assert self._message is not None, "result() before finish()"
        return self._message

    def _build(self, totals: Totals) -> dict[str, Any]:
        content = [c for c in (self._content(b) for b in self.blocks) if c is not None]
        reason, sequence = stop_reason(totals, self.stops, any(c["type"] == "tool_use" for c in content))
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": content,
                "stop_reason": reason, "stop_sequence": sequence,
                "usage": {"input_tokens": totals.prompt_tokens or 0, "output_tokens": totals.completion_tokens or 0}}

    @staticmethod
    def _content(block: dict[str, Any]) -> dict[str, Any] | None:
        text = "".join(block["parts"])
        if block["kind"] == "text":
            return {"type": "text", "text": text}
        if block["kind"] == "thinking":
            return {"type": "thinking", "thinking": text, "signature": ""}
        try:
            args = json.loads(text) if text.strip() else {}
        except ValueError:
            args = None
        if not isinstance(args, dict):  # cut off mid-call (max_tokens): not a call a client could make
            log.warning("dropping tool call %s: its arguments are not a JSON object: %.200s", block["name"], text)
            return None
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": args}
