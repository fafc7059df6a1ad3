"""The engine's answer as an OpenAI Response: the typed SSE events while it streams, the object at the end.

Event sequence (OpenAI's, as the `openai` SDKs and the Agents SDK read it): `response.created` and
`response.in_progress`; per output item `response.output_item.added`, then for a message
`response.content_part.added`, `response.output_text.delta`s, `response.output_text.done`,
`response.content_part.done`; for a function call `response.function_call_arguments.delta`s and `.done`; for
reasoning `response.reasoning_text.delta`s and `.done` (as vLLM serves open-weight reasoning); then
`response.output_item.done`. The last event is `response.completed`, or `response.incomplete` (status
"incomplete", `incomplete_details.reason: "max_output_tokens"`) when the answer hit the token limit, or
`error` + `response.failed` when the engine failed. Every event has a `sequence_number`.

Output items follow the engine: reasoning, message text, one `function_call` item per tool call, each new
kind closing the item before it. `usage` is the engine's own count.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llmctl.server import errors
from llmctl.server.chatbridge import ChatDelta, ToolFragment, Totals, sse
from llmctl.server.errors import GatewayError


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def usage(totals: Totals) -> dict[str, Any]:
    prompt, completion = totals.prompt_tokens or 0, totals.completion_tokens or 0
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


class ResponseStream:
    """State machine from engine deltas to Responses events; `stream=False` only builds the final Response."""

    dialect = errors.OPENAI

    def __init__(self, model: str, echo: dict[str, Any], *, stream: bool) -> None:
        self.id = _id("resp_")
        self.created_at = int(time.time())
        self.model = model
        self.echo = echo
        self.stream = stream
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # kind, id, parts (text pieces), and call_id/name for calls
        self.tool_items: dict[int, int] = {}  # the engine's tool-call index -> item index
        self._prefix = b""  # the open item's delta event up to its JSON-encoded piece
        self._final: dict[str, Any] | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return sse(kind, data)

    def response(self, status: str, output: list[dict[str, Any]], totals: Totals | None = None,
                 **extra: Any) -> dict[str, Any]:
        """The Response object, with the request's echoed fields."""
        done = status != "in_progress"
        return {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "background": False, "completed_at": int(time.time()) if done else None, "error": None,
                "incomplete_details": None, "max_tool_calls": None, "model": self.model, "output": output,
                "previous_response_id": None, "service_tier": "default", "store": False, "top_logprobs": 0,
                "usage": usage(totals) if totals is not None else None, **self.echo, **extra}

    # -- items ----------------------------------------------------------------------------------------------------
    def _open(self, kind: str, **fields: Any) -> bytes:
        out = self._close("completed")
        index = len(self.items)
        item = {"kind": kind, "id": _id({"message": "msg_", "reasoning": "rs_", "function_call": "fc_"}[kind]),
                "parts": [], **fields}
        self.items.append(item)
        if not self.stream:
            return out
        added = {"output_index": index, "item": self._item(item, "in_progress")}
        out += self._event("response.output_item.added", added)
        head = f'"item_id":"{item["id"]}","output_index":{index}'
        if kind == "function_call":
            name = "response.function_call_arguments.delta"
        else:
            name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
            head += ',"content_index":0'
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []} if kind == "message" \
                else {"type": "reasoning_text", "text": ""}
            out += self._event("response.content_part.added", {"item_id": item["id"], "output_index": index,
                                                               "content_index": 0, "part": part})
        self._prefix = f'event: {name}\ndata: {{"type":"{name}",{head},"delta":'.encode()
        return out

    def _close(self, status: str) -> bytes:
        if not self.items or self.items[-1].get("status"):
            return b""
        item = self.items[-1]
        item["status"] = status
        if not self.stream:
            return b""
        index, text = len(self.items) - 1, "".join(item["parts"])
        where = {"item_id": item["id"], "output_index": index}
        if item["kind"] == "function_call":
            out = self._event("response.function_call_arguments.done", {**where, "arguments": text})
        else:
            done = self._item(item, status)["content"][0]
            kind = "response.output_text.done" if item["kind"] == "message" else "response.reasoning_text.done"
            extra = {"logprobs": []} if item["kind"] == "message" else {}
            out = self._event(kind, {**where, "content_index": 0, "text": text, **extra})
            out += self._event("response.content_part.done", {**where, "content_index": 0, "part": done})
        return out + self._event("response.output_item.done", {"output_index": index, "item": self._item(item, status)})

    @staticmethod
    def _item(item: dict[str, Any], status: str) -> dict[str, Any]:
        text = "".join(item["parts"]) if status != "in_progress" else ""
        if item["kind"] == "function_call":
            return {"id": item["id"], "type": "function_call", "status": status, "call_id": item["call_id"],
                    "name": item["name"], "arguments": text}
        if item["kind"] == "reasoning":
            content = [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []
            return {"id": item["id"], "type": "reasoning", "status": status, "summary": [], "content": content}
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] \
            if status != "in_progress" else []
        return {"id": item["id"], "type": "message", "status": status, "role": "assistant", "content": content}

    def _append(self, index: int, piece: str) -> bytes:
        self.items[index]["parts"].append(piece)
        if not self.stream:
            return b""
        out = self._prefix + json.dumps(piece, ensure_ascii=False).encode()
        out += f',"logprobs":[],"sequence_number":{self.seq}}}\n\n'.encode() if self.items[index]["kind"] == "message" \
            else f',"sequence_number":{self.seq}}}\n\n'.encode()
        self.seq += 1
        return out

    def _piece(self, kind: str, piece: str) -> bytes:
        last = self.items[-1] if self.items else None
        out = b"" if last and last["kind"] == kind and not last.get("status") else self._open(kind)
        return out + self._append(len(self.items) - 1, piece)

    def _tool(self, frag: ToolFragment) -> bytes:
        out = b""
        index = self.tool_items.get(frag.index)
        if index is None:
            out = self._open("function_call", call_id=frag.id or _id("call_"), name=frag.name or "")
            index = self.tool_items[frag.index] = len(self.items) - 1
        if frag.arguments:
            if index != len(self.items) - 1 or self.items[index].get("status"):
                self.items[index]["parts"].append(frag.arguments)  # a late fragment of an earlier call
            else:
                out += self._append(index, frag.arguments)
        return out

    # -- the driver's interface ----------------------------------------------------------------------------------
    def begin(self) -> bytes:
        if not self.stream:
            return b""
        created = self._event("response.created", {"response": self.response("in_progress", [])})
        return created + self._event("response.in_progress", {"response": self.response("in_progress", [])})

    def feed(self, d: ChatDelta, totals: Totals) -> bytes:
        out = b""
        if d.reasoning:
            out += self._piece("reasoning", d.reasoning)
        if d.text:
            out += self._piece("message", d.text)
        for frag in d.tools:
            out += self._tool(frag)
        return out

    def finish(self, totals: Totals) -> bytes:
        incomplete = totals.finish == "length"
        out = self._close("incomplete" if incomplete else "completed")
        output = [self._item(item, item["status"]) for item in self.items]
        if incomplete:
            self._final = self.response("incomplete", output, totals,
                                        incomplete_details={"reason": "max_output_tokens"})
        else:
            self._final = self.response("completed", output, totals)
        if not self.stream:
            return b""
        kind = "response.incomplete" if incomplete else "response.completed"
        return out + self._event(kind, {"response": self._final})

    def fail(self, err: GatewayError) -> bytes:
        if not self.stream:
            return b""
        out = self._event("error", {"code": "server_error", "message": err.message, "param": None})
        failed = self.response("failed", [self._item(i, i.get("status") or "incomplete") for i in self.items],
                               error={"code": "server_error", "message": err.message})
        return out + self._event("response.failed", {"response": failed})

    def result(self) -> dict[str, Any]:
        assert self._final is not None, "result() before finish()"
        return self._final
