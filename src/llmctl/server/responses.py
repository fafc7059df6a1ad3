"""OpenAI's Responses API request (/v1/responses, /v1/responses/input_tokens) as an OpenAI chat body.

Stateless, as Ollama's: the whole conversation comes in `input`, so `previous_response_id`, `store: true`,
`conversation`, `background` and stored `prompt`s are a 400 that says so (the SDKs leave `store` out by
default, which is fine). The mapping:
- `instructions` is the first (system) message, replacing the model's SYSTEM as a system message does on
  /api/chat; `input` is a string (one user turn) or items: `message`s (`input_text`/`output_text` parts;
  roles user, assistant, system, developer), `function_call`s (the assistant's `tool_calls`, merged into the
  assistant turn before them), `function_call_output`s (`tool` messages), `reasoning` (the next assistant
  turn's `reasoning_content`);
- `max_output_tokens`, `temperature`, `top_p` are llama-server's sampling fields; `text.format` its
  `response_format`;
- function `tools`, `tool_choice` and `parallel_tool_calls` go to the template (jinja mode only).
The request fields a Response object repeats are kept in `echo`. The answer side is `responses_stream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmctl.server import chatbridge, translate
from llmctl.server.errors import GatewayError

_STATEFUL = {
    "previous_response_id": "previous_response_id is not supported: llmctl serve is stateless; send the whole "
                            "conversation in `input`",
    "conversation": "conversation is not supported: llmctl serve is stateless; send the whole conversation in "
                    "`input`",
    "prompt": "stored prompts are not supported: send the instructions and input themselves",
}


@dataclass(frozen=True)
class ResponsesRequest:
    chat: dict[str, Any]  # the OpenAI chat body for the engine
    stream: bool
    echo: dict[str, Any]  # request fields the Response object repeats


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


def parse(body: dict[str, Any], *, count_only: bool = False) -> ResponsesRequest:
    """Check a Responses request and map it (`count_only`: an input_tokens request)."""
    for key, message in _STATEFUL.items():
        if body.get(key):
            raise _bad(message, key)
    if body.get("store") is True:
        raise _bad("store: true is not supported: llmctl serve is stateless and keeps no responses (leave store "
                   "out or set it to false)", "store")
    if body.get("background") is True:
        raise _bad("background: true is not supported: llmctl serve answers in the request", "background")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("instructions must be a string", "instructions")
    messages = ([{"role": "system", "content": instructions}] if instructions else []) + _input(body.get("input"))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    if not count_only:
        chat.update(_sampling(body))
    tools = _tools(body.get("tools"))
    choice: Any = body.get("tool_choice") or "auto"
    if tools:
        chat["tool_choice"], chat["tools"] = _apply_choice(choice, tools)
        parallel = body.get("parallel_tool_calls")
        if isinstance(parallel, bool):
            chat["parallel_tool_calls"] = parallel
    fmt = _text_format(body.get("text"))
    if fmt is not None and not count_only:
        chat["response_format"] = fmt
    fmt_echo = body["text"].get("format") if fmt is not None else {"type": "text"}
    echo = {
        "instructions": instructions or None, "tools": [_echo_tool(t) for t in tools], "tool_choice": choice,
        "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "text": {"format": fmt_echo},
        "metadata": body.get("metadata") or {}, "truncation": body.get("truncation") or "disabled",
        "reasoning": {"effort": None, "summary": None}, "user": body.get("user"),
    }
    return ResponsesRequest(chat, translate.flag(body, "stream", False) and not count_only, echo)


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _bad(f"max_output_tokens must be an integer >= 1, got {limit!r}", "max_output_tokens")
        out["max_tokens"] = limit
    sampling = {k: body[k] for k in ("temperature", "top_p") if body.get(k) is not None}
    translate.check_sampling(sampling)
    return {**out, **sampling}


def _input(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value:
            raise _bad("input must not be empty", "input")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad("input must be a string or a non-empty list of input items", "input")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call_id -> function name, for the tool messages that answer them
    reasoning = ""
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            msg = _message(item, where)
            if msg["role"] == "assistant" and reasoning:
                msg["reasoning_content"], reasoning = reasoning, ""
            out.append(msg)
        elif kind == "function_call":
            call = _call(item, where)
            names[call["id"]] = call["function"]["name"]
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
            if reasoning:
                out[-1]["reasoning_content"], reasoning = reasoning, ""
        elif kind == "function_call_output":
            out.append(_output(item, where, names))
        elif kind == "reasoning":
            parts = item.get("content") or item.get("summary") or []
            if not isinstance(parts, list):
                raise _bad(f"{where}: a reasoning item's content and summary are lists of parts", where)
            reasoning += "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))
        elif kind == "item_reference":
            raise _bad(f"{where}: item_reference is not supported: llmctl serve is stateless; send the item itself",
                       where)
        else:
            raise _bad(f"{where}: unsupported input item type {kind!r}", where)
    return out


_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    given = item.get("role")
    role = _ROLES.get(given) if isinstance(given, str) else None  # a list or an object is no role (nor hashable)
    if role is None:
        raise _bad(f'{where}.role must be "user", "assistant", "system" or "developer"', f"{where}.role")
    return {"role": role, "content": _text(item.get("content"), f"{where}.content")}


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where} must be a string or a list of content parts", where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif kind in ("input_image", "input_file", "input_audio"):
            raise _bad(f"{where}[{j}]: {kind} is not supported by llmctl serve yet", f"{where}[{j}]")
        else:
            raise _bad(f"{where}[{j}]: unsupported content part {kind!r}", f"{where}[{j}]")
    return "".join(texts)


def _call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise _bad(f"{where}: a function_call needs call_id and name", where)
    if not isinstance(args, str):
        raise _bad(f"{where}.arguments must be a JSON string", f"{where}.arguments")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _output(item: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}: a function_call_output needs the call_id it answers", where)
    msg = {"role": "tool", "tool_call_id": call_id, "content": _text(item.get("output") or "", f"{where}.output")}
    if call_id in names:
        msg["name"] = names[call_id]
    return msg


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(f"{where}: {kind!r} tools are not supported: llmctl serve runs function tools only", where)
        out.append(chatbridge.function_tool(tool.get("name"), tool.get("description"), tool.get("parameters"), where))
    return out


def _apply_choice(choice: Any, tools: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    if choice in ("auto", "none", "required"):
        return chatbridge.tool_choice(choice, tools, None)
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return chatbridge.tool_choice("required", tools, choice["name"])
    raise _bad('tool_choice must be "auto", "none", "required" or {"type": "function", "name": ...}', "tool_choice")


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    return {"type": "function", "name": fn["name"], "description": fn.get("description"),
            "parameters": fn["parameters"], "strict": None}


def _text_format(text: Any) -> dict[str, Any] | None:
    """`text.format` as llama-server's `response_format`."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _bad('text must be an object such as {"format": {"type": "text"}}', "text")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        return {"type": "json_schema", "json_schema": {"name": fmt.get("name") or "format", "schema": fmt["schema"]}}
    raise _bad('text.format must be {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", '
               '"schema": {...}}', "text.format")
