"""The Responses API and Anthropic's Messages API run as OpenAI chats on the engine.

Each of the two translators (`responses`, `anthropic`) turns its request into one OpenAI chat body (messages,
tools, sampling). From there this module takes the path /v1/chat/completions takes: the model's SYSTEM,
MESSAGEs and PARAMETERs, llama-server's own chat endpoint in jinja mode or a prompt rendered here in the other
modes (`translate.openai_chat`), the empty-answer retry of `answer`. The engine's stream comes back as
`ChatDelta`s (text, reasoning, tool-call fragments, finish reason, the engine's token counts) for the
translators' state machines: one `json.loads` per engine event, nothing else parsed.

Prompt tokens are counted by the engine too (`count_tokens`: llama-server's /apply-template and /tokenize), so
a count a client asks for is the count the engine will report in `usage`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Mapping

from llmctl.runtime.prompt import COMPLETION, JINJA, prompt_mode
from llmctl.runtime.scheduler import Runner
from llmctl.server import answer, translate
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import Gateway
from llmctl.server.proxy import UpstreamStream, post_json


@dataclass(frozen=True)
class ToolFragment:
    """A piece of one tool call as llama-server streams it: the id and name come first, then arguments."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass
class ChatDelta:
    """One engine event, reduced to what the Responses and Messages translators need."""

    text: str = ""
    reasoning: str = ""
    tools: tuple[ToolFragment, ...] = ()
    finish: str | None = None  # OpenAI's finish_reason: "stop", "length", "tool_calls"
    stop_word: str | None = None  # the stop string that ended the answer, where the engine says (/completion)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_ms: float | None = None
    predicted_ms: float | None = None


@dataclass
class Totals:
    """What is known about the answer so far: the latest non-empty value of each count and the finish."""

    finish: str | None = None
    stop_word: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_ms: float | None = None
    predicted_ms: float | None = None

    def add(self, d: ChatDelta) -> None:
        for name in _TOTALS:
            value = getattr(d, name)
            if value is not None:
                setattr(self, name, value)


_TOTALS = ("finish", "stop_word", "prompt_tokens", "completion_tokens", "prompt_ms", "predicted_ms")


@dataclass(frozen=True)
class EngineRequest:
    """POST `body` to `endpoint`; `retry` is the fallback for an empty answer (template/completion modes)."""

    endpoint: str
    body: dict[str, Any]
    retry: dict[str, Any] | None
    strip_leading: bool


# -- requests ---------------------------------------------------------------------------------------------------
async def check_tools(gw: Gateway, name: str, chat: Mapping[str, Any]) -> None:
    """Tools need llama-server's tool-call parser, which only jinja mode has: refuse them up front (as /api/chat
    does) rather than answer as if the model had no tools."""
    if chat.get("tools") and (mode := prompt_mode(await gw.scheduler.resolve(name))) != JINJA:
        raise GatewayError(400, f"{name} cannot call tools: tools need a model with a Jinja chat template, and "
                                f"this one is served in {mode} mode", param="tools")


def _plain_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls and results as plain turns, for prompts rendered without a tool-aware template."""
    return [{"role": m["role"], "content": m.get("content") or ""} for m in messages]


def _chat_for(runner: Runner, chat: dict[str, Any], limits: Any = None) -> tuple[str, dict[str, Any]]:
    if runner.prompt_mode != JINJA:
        chat = {k: v for k, v in chat.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
        chat["messages"] = _plain_turns(chat["messages"])
    return translate.openai_chat(runner, chat, limits=limits)


def engine_request(runner: Runner, chat: dict[str, Any], *, limits: Any = None) -> EngineRequest:
    """The streamed engine request of an OpenAI chat body, as /v1/chat/completions would send it (a Go
    TEMPLATE renders within `limits`: build it with `Gateway.render`, off the event loop).

    In jinja mode the engine is also asked for its usage chunk and prompt progress (whose first event gives
    the prompt's token count before any text, for Anthropic's `message_start`).
    """
    endpoint, body = _chat_for(runner, chat, limits)
    body["stream"] = True
    if endpoint == translate.CHAT:
        body["stream_options"] = {"include_usage": True}
        body["return_progress"] = True
        return EngineRequest(endpoint, body, None, False)
    return EngineRequest(endpoint, body, answer.retry_body(endpoint, body), runner.prompt_mode == COMPLETION)


async def count_tokens(gw: Gateway, runner: Runner, chat: dict[str, Any]) -> int:
    """The prompt tokens the engine would evaluate for this chat: its template applied by llama-server itself
    (jinja mode) or the prompt rendered here, tokenized by the engine as a completion is."""
    endpoint, body = await gw.render(runner, _chat_for, chat)
    if endpoint == translate.CHAT:
        keys = ("messages", "tools", "tool_choice", "parallel_tool_calls", "chat_template_kwargs")
        template_body = {k: body[k] for k in keys if k in body}
        applied = await post_json(gw.client, runner.base_url + "/apply-template", template_body,
                                  runner.auth_headers)
        prompt = applied.get("prompt")
    else:
        prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise GatewayError(502, "the engine did not render the prompt", type_="engine_error")
    tokens = await post_json(gw.client, runner.base_url + "/tokenize",
                             {"content": prompt, "add_special": True, "parse_special": True}, runner.auth_headers)
    if not isinstance(tokens.get("tokens"), list):
        raise GatewayError(502, "the engine did not tokenize the prompt", type_="engine_error")
    return len(tokens["tokens"])


# -- the engine's stream ----------------------------------------------------------------------------------------
def _tool_fragments(calls: Any) -> tuple[ToolFragment, ...]:
    out = []
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        if not isinstance(call, dict):
            continue
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        args = fn.get("arguments")
        if isinstance(args, dict):
            args = json.dumps(args, ensure_ascii=False)
        idx = call.get("index")
        out.append(ToolFragment(idx if isinstance(idx, int) else k, call.get("id") or None, fn.get("name") or None,
                                args if isinstance(args, str) else ""))
    return tuple(out)


def parse_chunk(data: Mapping[str, Any]) -> ChatDelta:
    """One event of llama-server's /v1/chat/completions stream (jinja mode)."""
    d = ChatDelta()
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        c = choices[0]
        delta = c.get("delta")
        if isinstance(delta, dict):
            d.text = delta.get("content") or ""
            d.reasoning = delta.get("reasoning_content") or ""
            if delta.get("tool_calls"):
                d.tools = _tool_fragments(delta["tool_calls"])
        d.finish = c.get("finish_reason")
    usage = data.get("usage")
    if isinstance(usage, dict):
        d.prompt_tokens, d.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    elif isinstance(progress := data.get("prompt_progress"), dict):
        d.prompt_tokens = progress.get("total")
    timings = data.get("timings")
    if isinstance(timings, dict):
        d.prompt_ms, d.predicted_ms = timings.get("prompt_ms"), timings.get("predicted_ms")
    return d


async def deltas(resp: UpstreamStream, base_url: str, req: EngineRequest,
                 headers: Mapping[str, str] | None = None) -> AsyncGenerator[ChatDelta, None]:
    """The engine's answer as ChatDeltas; template/completion modes through `answer.pieces` (never empty; its
    retry goes with `headers`, the engine's key)."""
    if req.endpoint == translate.CHAT:
        try:
            async for payload in resp.events():
                if payload != b"[DONE]":
                    yield parse_chunk(json.loads(payload))
        finally:
            await resp.aclose()
        return
    pieces = answer.pieces(resp, base_url + req.endpoint, req.retry, answer.Outcome(),
                           strip_leading=req.strip_leading, headers=headers)
    try:
        async for p in pieces:
            yield ChatDelta(text=p.text, finish=p.finish, stop_word=p.stop_word, prompt_tokens=p.prompt_tokens,
                            completion_tokens=p.completion_tokens, prompt_ms=p.prompt_ms, predicted_ms=p.predicted_ms)
    finally:
        await pieces.aclose()


def sse(kind: str, data: dict[str, Any]) -> bytes:
    """A named SSE event, as both APIs send them (Anthropic's SDKs dispatch on the `event:` line)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


# -- shared request checks ----------------------------------------------------------------------------------------
def tool_choice(choice: str, tools: list[dict[str, Any]], only: str | None) -> tuple[str, list[dict[str, Any]]]:
    """A tool choice as llama-server takes it ("auto", "none", "required"): naming one tool is "required" with
    only that tool offered."""
    if only is None:
        return choice, tools
    kept = [t for t in tools if t["function"]["name"] == only]
    if not kept:
        raise GatewayError(400, f"tool_choice names {only!r}, which is not in tools", param="tool_choice")
    return "required", kept


def function_tool(name: Any, description: Any, parameters: Any, where: str) -> dict[str, Any]:
    """An OpenAI chat `tools` entry, checked."""
    if not isinstance(name, str) or not name:
        raise GatewayError(400, f"{where}.name must be a non-empty string", param=f"{where}.name")
    if parameters is not None and not isinstance(parameters, dict):
        raise GatewayError(400, f"{where}: the parameters schema must be an object", param=where)
    fn: dict[str, Any] = {"name": name, "parameters": parameters or {"type": "object", "properties": {}}}
    if isinstance(description, str) and description:
        fn["description"] = description
    return {"type": "function", "function": fn}
