"""Tool calling on /api/chat: Ollama's shapes into llama-server's OpenAI ones, and tool calls back.

Only engines in jinja mode can call tools: llama-server renders the tools into the GGUF's chat template,
constrains the output to the template's tool-call format and parses the calls out of it. Templates
rendered by llmctl (Go TEMPLATE) and plain completion mode have no such parser, so a request with `tools`
for those models is refused with a 400 instead of quietly answering without them.

The two dialects differ in small ways that break a naive pass-through:
- Ollama's `tool_calls[].function.arguments` is an object; OpenAI's (and llama-server's) is a JSON string.
- Ollama's tool results name their tool in `tool_name`; OpenAI's carry `tool_call_id` (and `name`).
- llama-server streams a call in pieces (`delta.tool_calls[].function.arguments` fragments by `index`);
  Ollama sends each call whole, so `ToolCalls` collects the pieces until the answer ends.
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncGenerator, Mapping

from llmctl.runtime.scheduler import Runner
from llmctl.server import translate
from llmctl.server.errors import GatewayError
from llmctl.server.proxy import Piece, UpstreamStream, parse_piece

log = logging.getLogger("llmctl.gateway")


def check_tools(tools: Any) -> list[dict[str, Any]]:
    """Ollama `tools` (OpenAI's function-tool shape; `type` may be left out) as llama-server wants them."""
    if not isinstance(tools, list):
        raise GatewayError(400, "tools must be a list of tool objects", param="tools")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise GatewayError(400, f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\", "
                                    f"\"description\", \"parameters\"}}}}", param=f"tools[{i}]")
        if (tool.get("type") or "function") != "function":
            raise GatewayError(400, f"tools[{i}].type must be \"function\"", param=f"tools[{i}].type")
        out.append({**tool, "type": "function"})
    return out


def has_tool_turns(messages: list[dict[str, Any]]) -> bool:
    """Whether the conversation carries tool calls or tool results that must reach the template as such."""
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


def engine_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama chat messages as OpenAI ones: calls get an id and string arguments, results a tool_call_id."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of the last assistant turn's calls not yet answered
    for i, m in enumerate(messages):
        msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
        calls = m.get("tool_calls")
        if calls:
            if not isinstance(calls, list):
                raise GatewayError(400, f"messages[{i}].tool_calls must be a list", param=f"messages[{i}].tool_calls")
            msg["tool_calls"] = [_engine_call(c, i, j) for j, c in enumerate(calls)]
            pending = [(c["id"], c["function"]["name"]) for c in msg["tool_calls"]]
        if m["role"] == "tool":
            name = m.get("tool_name") or m.get("name")
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                match = next((p for p in pending if p[1] == name), pending[0] if pending else None)
                call_id = match[0] if match else None
            if call_id:
                msg["tool_call_id"] = call_id
                pending = [p for p in pending if p[0] != call_id]
            if isinstance(name, str) and name:
                msg["name"] = name
        out.append(msg)
    return out


def _engine_call(call: Any, i: int, j: int) -> dict[str, Any]:
    where = f"messages[{i}].tool_calls[{j}]"
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise GatewayError(400, f"{where} must be {{\"function\": {{\"name\", \"arguments\"}}}}", param=where)
    args = fn.get("arguments")
    if args is None:
        args = {}
    if isinstance(args, dict):
        text = json.dumps(args, ensure_ascii=False)
    elif isinstance(args, str):  # a client that already speaks OpenAI
        text = args
    else:
        raise GatewayError(400, f"{where}.function.arguments must be an object", param=f"{where}.function.arguments")
    call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{i}_{j}"
    return {"id": call_id, "type": "function", "function": {"name": fn["name"], "arguments": text}}


def chat_request(runner: Runner, messages: list[dict[str, Any]], options: dict[str, Any], fmt: Any,
                 tools: list[dict[str, Any]] | None) -> tuple[str, dict[str, Any]]:
    """The llama-server request of a jinja-mode chat with tools or tool turns (the model's SYSTEM,
    MESSAGEs and PARAMETERs apply as in every chat)."""
    from llmctl.runtime.prompt import JINJA, build_completion

    req = build_completion(runner.model, engine_messages(messages), options, stream=True, mode=JINJA)
    body = dict(req.body)
    if tools:
        body["tools"] = tools
    rf = translate.response_format(fmt)
    if rf:
        body["response_format"] = rf
    return req.endpoint, body


class ToolCalls:
    """The tool calls of one answer, assembled from llama-server's stream (or a whole response)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, data: Mapping[str, Any]) -> None:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        for key, fragments in (("delta", True), ("message", False)):
            part = choice.get(key)
            if isinstance(part, dict) and isinstance(part.get("tool_calls"), list):
                for k, call in enumerate(part["tool_calls"]):
                    self._merge(call, k, fragments)

    def _merge(self, call: Any, k: int, fragments: bool) -> None:
        if not isinstance(call, dict):
            return
        idx = call.get("index")
        idx = idx if isinstance(idx, int) else k
        entry = self._calls.setdefault(idx, {"id": "", "name": "", "arguments": ""})
        if isinstance(call.get("id"), str) and call["id"]:
            entry["id"] = call["id"]
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        for field in ("name", "arguments"):
            value = fn.get(field)
            if isinstance(value, dict):
                value = json.dumps(value, ensure_ascii=False)
            if isinstance(value, str):
                entry[field] = entry[field] + value if fragments else value

    def ollama(self) -> list[dict[str, Any]]:
        """Ollama's `message.tool_calls`: arguments as an object. A call whose arguments are not a JSON
        object (the answer was cut off mid-call) is left out: a client could not call it anyway."""
        out = []
        for idx in sorted(self._calls):
            entry = self._calls[idx]
            if not entry["name"]:
                continue
            try:
                args = json.loads(entry["arguments"]) if entry["arguments"].strip() else {}
            except ValueError:
                args = None
            if not isinstance(args, dict):
                log.warning("dropping tool call %s: its arguments are not a JSON object: %.200s", entry["name"],
                            entry["arguments"])
                continue
            call: dict[str, Any] = {"function": {"index": idx, "name": entry["name"], "arguments": args}}
            if entry["id"]:
                call = {"id": entry["id"], **call}
            out.append(call)
        return out


async def pieces(resp: UpstreamStream, calls: ToolCalls) -> AsyncGenerator[Piece, None]:
    """The engine's events as `Piece`s for the NDJSON writer, feeding their tool-call fragments to `calls`.

    No empty-answer retry here (unlike `answer.pieces`): an answer that is only a tool call has no text.
    """
    try:
        async for payload in resp.events():
            if payload == b"[DONE]":
                continue
            data = json.loads(payload)
            calls.add(data)
            yield parse_piece(data)
    finally:
        await resp.aclose()


def done_reason(finish: str | None) -> str | None:
    """Ollama says "stop" where OpenAI says "tool_calls"."""
    return "stop" if finish == "tool_calls" else finish
