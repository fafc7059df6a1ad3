"""Anthropic's Messages API request (/v1/messages, /v1/messages/count_tokens) as an OpenAI chat body.

So that Claude Code and other Anthropic-protocol tools run on local models (`ANTHROPIC_BASE_URL=http://...`),
as with Ollama and llama-server. The mapping follows Ollama's `anthropic` package:
- `system` (a string or text blocks) is the first message: it replaces the model's SYSTEM, as a system message
  does on /api/chat;
- a user turn's `tool_result` blocks become OpenAI `tool` messages (before the turn's text), an assistant
  turn's `tool_use` blocks its `tool_calls` (input as a JSON string), `thinking` its `reasoning_content`;
- `max_tokens`, `stop_sequences`, `temperature`, `top_p`, `top_k` are llama-server's sampling fields;
- `tools` (`input_schema`) and `tool_choice` (`auto`, `any` -> "required", `tool` -> "required" with only that
  tool, `none`) go to the template, which only a jinja-mode model has.
Images, documents and server tools are refused with a 400 rather than silently dropped. The answer side is
`anthropic_stream`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmctl.server import chatbridge, translate
from llmctl.server.errors import GatewayError


@dataclass(frozen=True)
class MessagesRequest:
    chat: dict[str, Any]  # the OpenAI chat body for the engine
    stream: bool
    stop_sequences: tuple[str, ...]


def parse(body: dict[str, Any], *, count_only: bool = False) -> MessagesRequest:
    """Check a Messages request and map it (`count_only`: a count_tokens request, no max_tokens)."""
    chat: dict[str, Any] = {"model": body["model"]}
    system = _system(body.get("system"))
    chat["messages"] = ([{"role": "system", "content": system}] if system else []) + _messages(body.get("messages"))
    stops: tuple[str, ...] = ()
    if not count_only:
        chat.update(_sampling(body))
        stops = tuple(chat.get("stop", ()))
    tools = _tools(body.get("tools"))
    if tools:
        choice, only, parallel = _tool_choice(body.get("tool_choice"))
        chat["tool_choice"], chat["tools"] = chatbridge.tool_choice(choice, tools, only)
        if parallel is not None:
            chat["parallel_tool_calls"] = parallel
    return MessagesRequest(chat, translate.flag(body, "stream", False) and not count_only, stops)


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    limit = body.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise _bad(f"max_tokens: an integer >= 1 is required, got {limit!r}", "max_tokens")
    out: dict[str, Any] = {"max_tokens": limit}
    for key in ("temperature", "top_p"):  # Anthropic's range for both is 0..1
        v = body.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise _bad(f"{key}: a number between 0 and 1 is required, got {v!r}", key)
            out[key] = v
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise _bad(f"top_k: an integer >= 0 is required, got {top_k!r}", "top_k")
        out["top_k"] = top_k
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise _bad("stop_sequences: a list of non-empty strings is required", "stop_sequences")
        if stops:
            out["stop"] = list(stops)
    return out


def _system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise _bad(f"system[{i}]: only text blocks are supported", f"system[{i}]")
            texts.append(block["text"])
        return "\n\n".join(texts)
    raise _bad("system: a string or a list of text blocks is required", "system")


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: a non-empty list is required", "messages")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_use id -> tool name, for the tool messages that answer them
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise _bad(f'{where}: an object with role "user" or "assistant" is required', where)
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
        elif isinstance(content, list):
            out.extend(_turn(m["role"], content, where, names))
        else:
            raise _bad(f"{where}.content: a string or a list of content blocks is required", f"{where}.content")
    return out


def _turn(role: str, blocks: list[Any], where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """One turn's content blocks as OpenAI messages: the tool results first, then the turn itself."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and role == "assistant":
            calls.append(_call(block, at))
            names[calls[-1]["id"]] = calls[-1]["function"]["name"]
        elif kind == "tool_result" and role == "user":
            results.append(_result(block, at, names))
        elif kind == "thinking" and role == "assistant":
            reasoning.append(str(block.get("thinking") or ""))
        elif kind == "redacted_thinking":
            continue  # encrypted by Anthropic: nothing a local model can read
        elif kind in ("image", "document"):
            raise _bad(f"{at}: {kind} content is not supported by llmctl serve yet", at)
        else:
            raise _bad(f"{at}: unsupported content block {kind!r} in a {role} turn", at)
    msg: dict[str, Any] = {"role": role, "content": "".join(texts)}
    if calls:
        msg["tool_calls"] = calls
    if any(reasoning):
        msg["reasoning_content"] = "".join(reasoning)
    return results + ([msg] if texts or calls or any(reasoning) or not results else [])


def _call(block: dict[str, Any], at: str) -> dict[str, Any]:
    call_id, name, args = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise _bad(f"{at}: tool_use needs an id and a name", at)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _bad(f"{at}.input: an object is required", f"{at}.input")
    arguments = json.dumps(args, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _result(block: dict[str, Any], at: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{at}: tool_result needs a tool_use_id", at)
    content = block.get("content")
    if isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad(f"{at}.content[{k}]: only text is supported in a tool_result", f"{at}.content[{k}]")
            parts.append(str(part.get("text") or ""))
        content = "".join(parts)
    elif content is not None and not isinstance(content, str):
        raise _bad(f"{at}.content: a string or a list of text blocks is required", f"{at}.content")
    msg = {"role": "tool", "tool_call_id": call_id, "content": content or ""}
    if call_id in names:
        msg["name"] = names[call_id]
    return msg


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("tools: a list is required", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad(f"{where}: an object is required", where)
        if tool.get("type") not in (None, "custom"):
            raise _bad(f"{where}: server tool {tool.get('type')!r} is not supported: llmctl serve runs client tools "
                       f"(name, description, input_schema) only", where)
        out.append(chatbridge.function_tool(tool.get("name"), tool.get("description"), tool.get("input_schema"),
                                            where))
    return out


_CHOICES = {"auto": "auto", "any": "required", "tool": "required", "none": "none"}


def _tool_choice(choice: Any) -> tuple[str, str | None, bool | None]:
    """`tool_choice` as (llama-server's choice, the one tool named, parallel calls allowed)."""
    if choice is None:
        return "auto", None, None
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str) or choice["type"] not in _CHOICES:
        raise _bad('tool_choice: {"type": "auto" | "any" | "tool" | "none"} is required', "tool_choice")
    only = choice.get("name") if choice["type"] == "tool" else None
    if choice["type"] == "tool" and (not isinstance(only, str) or not only):
        raise _bad('tool_choice: {"type": "tool"} needs the name of a tool', "tool_choice.name")
    parallel = choice.get("disable_parallel_tool_use")
    return _CHOICES[choice["type"]], only, (not parallel) if isinstance(parallel, bool) else None
