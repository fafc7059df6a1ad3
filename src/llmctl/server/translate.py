"""Requests into the engine's dialect, and engine events into the client's.

Which llama-server endpoint a chat goes to depends on the engine's `prompt_mode` (decided by the engine
layer from the model): "jinja" lets llama-server apply the GGUF chat template on `/v1/chat/completions`,
so OpenAI chat requests pass through nearly untouched (tools, logprobs, response_format and all); the
other modes render the prompt here (`runtime.prompt.build_completion`) and we translate the events back.
A Modelfile's SYSTEM, MESSAGE and PARAMETER lines apply in every mode, as Ollama applies them.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

from llmctl.artifact.model import Model
from llmctl.errors import InvalidInput
from llmctl.runtime.scheduler import Runner
from llmctl.server.errors import GatewayError

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
NATIVE = "/completion"


# -- validation --------------------------------------------------------------------------------------------
def model_name(body: Mapping[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name.strip():
        raise GatewayError(400, "model is required", param="model")
    return name.strip()


def flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise GatewayError(400, f"{key} must be true or false, got {value!r}", param=key)
    return value


def messages_of(body: Mapping[str, Any], *, allow_empty: bool = False) -> list[dict[str, Any]]:
    msgs = body.get("messages")
    if msgs is None and allow_empty:
        return []
    if not isinstance(msgs, list) or (not msgs and not allow_empty):
        raise GatewayError(400, "messages must be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise GatewayError(400, f"messages[{i}] must be an object with a role", param=f"messages[{i}]")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise GatewayError(400, f"messages[{i}].content must be a string or a list of parts",
                               param=f"messages[{i}].content")
    return msgs


_NUMBERS = {
    "temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0), "min_p": (0.0, 1.0), "repeat_penalty": (0.0, None),
}
_INTS = {"max_tokens": 0, "max_completion_tokens": 0, "seed": None, "top_k": 0, "n": 1, "num_predict": -2,
         "n_predict": -2}


def check_sampling(values: Mapping[str, Any], *, where: str = "") -> None:
    """Reject wrong types and out-of-range values with a 400 before they reach the engine."""
    for key, (lo, hi) in _NUMBERS.items():
        v = values.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (lo is not None and v < lo) or (
                hi is not None and v > hi):
            rng = f" between {lo} and {hi}" if hi is not None else f" >= {lo}"
            raise GatewayError(400, f"{where}{key} must be a number{rng}, got {v!r}", param=key)
    for key, least in _INTS.items():
        v = values.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or (least is not None and v < least):
            rng = f" >= {least}" if least is not None else ""
            raise GatewayError(400, f"{where}{key} must be an integer{rng}, got {v!r}", param=key)
    stop = values.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise GatewayError(400, f"{where}stop must be a string or a list of strings", param="stop")


# -- requests to the engine --------------------------------------------------------------------------------
def model_defaults(model: Model) -> dict[str, Any]:
    """The Modelfile PARAMETER lines as llama-server fields (request fields override them)."""
    from llmctl.runtime.prompt import sampling_params

    return sampling_params(dict(model.parameters)) if model.parameters else {}


def _merge(defaults: dict[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    body = {**defaults, **{k: v for k, v in request.items() if v is not None}}
    if "max_completion_tokens" in body and "max_tokens" not in request:
        body["max_tokens"] = body["max_completion_tokens"]
    if "max_tokens" in request or "max_completion_tokens" in request:
        body.pop("n_predict", None)  # llama-server prefers n_predict over max_tokens
    return body


def openai_chat(runner: Runner, body: dict[str, Any], *, limits: Any = None) -> tuple[str, dict[str, Any]]:
    """An OpenAI chat request for this engine: passthrough in jinja mode, rendered prompt otherwise (a Go
    TEMPLATE within `limits`: run it off the event loop, `Gateway.render`)."""
    from llmctl.runtime.prompt import JINJA, build_completion, conversation

    model = runner.model
    if runner.prompt_mode == JINJA:
        upstream = _merge(model_defaults(model), body)
        upstream["messages"] = conversation(model, body["messages"])
        return CHAT, upstream
    params = {k: v for k, v in body.items() if k not in ("messages", "model", "stream", "stream_options")}
    limit = params.pop("max_completion_tokens", None)
    limit = params.pop("max_tokens", limit)
    if limit is not None:
        params["num_predict"] = limit
    rf = params.pop("response_format", None)
    req = build_completion(model, body["messages"], params, stream=True, mode=runner.prompt_mode, limits=limits)
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        req.body["json_schema"] = _json_schema(rf)  # /completion has no response_format: it would be ignored
    return req.endpoint, req.body


def openai_completion(runner: Runner, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """OpenAI completions are raw prompts in every mode (no template), with the model's PARAMETERs."""
    return COMPLETIONS, _merge(model_defaults(runner.model), body)


def ollama_options(options: Any) -> dict[str, Any]:
    """Check Ollama `options` (Ollama names); the prompt layer maps them over the model's PARAMETERs."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise GatewayError(400, "options must be an object", param="options")
    check_sampling(options, where="options.")
    from llmctl.runtime.params import check_load_params

    try:  # load-time options do not restart a running engine, but nonsense in them is still a 400
        check_load_params(options, where="options.")
    except InvalidInput as exc:
        raise GatewayError(400, exc.message, param="options") from None
    return options


def response_format(fmt: Any) -> dict[str, Any] | None:
    """Ollama `format` ("json" or a JSON schema) as an OpenAI `response_format` for llama-server."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    raise GatewayError(400, 'format must be "json" or a JSON schema object', param="format")


def _json_schema(rf: dict[str, Any]) -> dict[str, Any]:
    spec = rf.get("json_schema") if rf.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {"type": "object"}


def ollama_chat(runner: Runner, messages: list[dict[str, Any]], options: dict[str, Any], fmt: Any,
                *, system: str | None = None, limits: Any = None) -> tuple[str, dict[str, Any]]:
    """An Ollama chat (or templated generate) for this engine, always streamed from upstream; a Go TEMPLATE
    renders within `limits` (run it off the event loop, `Gateway.render`)."""
    from llmctl.runtime.prompt import build_completion

    plain = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
    req = build_completion(runner.model, plain, options, stream=True, mode=runner.prompt_mode, system=system,
                           limits=limits)
    body = dict(req.body)
    rf = response_format(fmt)
    if rf and req.endpoint == CHAT:
        body["response_format"] = rf
    elif rf:
        body["json_schema"] = _json_schema(rf)
    return req.endpoint, body


def ollama_raw(model: Model, prompt: str, options: dict[str, Any], fmt: Any) -> tuple[str, dict[str, Any]]:
    """`/api/generate` with `raw: true`: the prompt goes to the engine as is."""
    from llmctl.runtime.prompt import sampling_params

    body: dict[str, Any] = {**sampling_params({**dict(model.parameters), **options}), "prompt": prompt,
                            "stream": True, "cache_prompt": True}
    rf = response_format(fmt)
    if rf:
        body["json_schema"] = _json_schema(rf)
    return NATIVE, body


# -- responses to the client -------------------------------------------------------------------------------
def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Clock:
    """`now_rfc3339()` for a stream's lines at a fifth of the cost: the date and time of day are formatted once
    per second, only the microseconds per call (datetime's isoformat is ~5 µs, and a stream stamps every token)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        t = time.time()
        second = int(t)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((t - second) * 1_000_000):06d}Z"


class OpenAIChunks:
    """OpenAI chat chunks built from translated engine events (template and completion modes)."""

    def __init__(self, name: str) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.name = name
        # `chunk({"content": text})` as a template: one json.dumps of the text per token, not of a whole dict
        head = self.chunk({"content": ""}).split(b'{"content":""}', 1)
        self._content_head, self._content_tail = head[0] + b'{"content":', b"}" + head[1]

    def content_chunk(self, text: str) -> bytes:
        """The same bytes as `chunk({"content": text})`."""
        return self._content_head + json.dumps(text, ensure_ascii=False).encode() + self._content_tail

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    def usage_chunk(self, prompt: int, completion: int) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.name,
                "choices": [], "usage": usage(prompt, completion)}
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    def completion(self, text: str, finish: str | None, prompt: int, completion: int) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish or "stop"}],
                "usage": usage(prompt, completion)}


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
