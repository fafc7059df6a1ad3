"""From chat messages and Ollama parameters to the request llama-server needs, in each prompt mode.

A model is served in one of three prompt modes (`prompt_mode`):

- "jinja": the model has a chat template (a chat-template layer, or `tokenizer.chat_template` in the GGUF):
  llama-server applies it (`--jinja`), we send `/v1/chat/completions`;
- "template": the model has an Ollama Go TEMPLATE (and no chat-template layer): we render the prompt here,
  with Ollama's semantics (`render_template`), and send `/completion`;
- "completion": a base model with neither: we write a plain "Q:/A:" transcript that makes a
  base model answer, with stop strings and a token limit, and send `/completion`.

Ollama's parameter names map to llama-server's in `runtime.params`; llama-server's answers are read in
`runtime.events`. Pure: no I/O except reading a GGUF header once per file (to see whether it carries a chat
template).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from llmctl.errors import InvalidInput
from llmctl.runtime import gotemplate
from llmctl.runtime.params import sampling_params

JINJA, TEMPLATE, COMPLETION = "jinja", "template", "completion"
PROMPT_MODES = (JINJA, TEMPLATE, COMPLETION)

# Base-model transcript: what the model sees, and where its answer ends. "Q:/A:" measured best on Gemma 3 270M
# (greedy, 8 everyday prompts): no empty answer, against 2 of 8 for "Question:/Answer:".
COMPLETION_USER, COMPLETION_ASSISTANT = "Q:", "A:"
COMPLETION_STOPS = ("\n\n", "\nQ:", "\nA:")  # an answer is one paragraph
COMPLETION_MAX_TOKENS = 128  # a base model rambles past a paragraph; Ollama's -1 (unlimited) is no default here
COMPLETION_REPEAT_PENALTY = 1.1  # Ollama's default; llama-server's is 1.0, which lets a 270M base model loop

# -- prompt mode --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _gguf_chat_template(path: str, mtime: float) -> str | None:
    from llmctl.artifact.gguf_meta import read_gguf

    value = read_gguf(Path(path)).kv.get("tokenizer.chat_template")
    return value if isinstance(value, str) and value.strip() else None


def gguf_chat_template(path: Path) -> str | None:
    """The chat template a GGUF file carries (`tokenizer.chat_template`), or None."""
    try:
        return _gguf_chat_template(str(path), Path(path).stat().st_mtime)
    except (OSError, InvalidInput):  # an unreadable file: the engine will say what is wrong with it
        return None


def prompt_mode(model: Any) -> str:
    """"jinja", "template" or "completion" for a Model (see the module docstring for the order).

    Only a model llama.cpp can serve has a prompt mode, so anything else (safetensors weights) is refused
    here first, in `Model.require_gguf`'s words: whoever asks how an engine would prompt a model (the
    gateway's tool checks, before any lease; an engine start) refuses it as `run` and `serve` do.
    """
    require_gguf = getattr(model, "require_gguf", None)
    if require_gguf is not None:
        require_gguf()
    if getattr(model, "chat_template", None):
        return JINJA
    if getattr(model, "template", None):
        return TEMPLATE
    if model.weights and gguf_chat_template(model.weights[0]):
        return JINJA
    return COMPLETION


# -- messages -----------------------------------------------------------------------------------------------
def _msg(m: Any) -> dict[str, Any]:
    if isinstance(m, Mapping):
        d = {str(k): v for k, v in m.items() if v is not None}
    else:
        d = {"role": getattr(m, "role"), "content": getattr(m, "content")}
    d["role"] = str(d.get("role", "user"))
    content = d.get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text
        d["content"] = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    else:
        d["content"] = "" if content is None else str(content)
    return d


def conversation(model: Any, messages: Iterable[Any], system: str | None = None) -> list[dict[str, Any]]:
    """Modelfile MESSAGEs + the given messages, with SYSTEM first unless the messages bring their own.

    This is Ollama's chat handler: `system` (if given) replaces the model's SYSTEM.
    """
    given = [_msg(m) for m in messages]
    msgs = [_msg(m) for m in (getattr(model, "messages", None) or ())] + given
    system = system if system is not None else getattr(model, "system", None)
    if system and not (given and given[0]["role"] == "system"):
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def _collate(msgs: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Ollama's collate: all system texts joined; consecutive same-role messages merged (tool excepted)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in msgs:
        m = dict(m)
        if m["role"] == "system":
            system.append(m["content"])
        if out and out[-1]["role"] == m["role"] and m["role"] != "tool":
            out[-1]["content"] += "\n\n" + m["content"]
        else:
            out.append(m)
    return "\n\n".join(system), out


def _go_message(m: dict[str, Any]) -> dict[str, Any]:
    d = {"Role": m["role"], "Content": m["content"]}
    for src, dst in (("tool_calls", "ToolCalls"), ("thinking", "Thinking"), ("tool_name", "ToolName"),
                     ("tool_call_id", "ToolCallID"), ("images", "Images")):
        if m.get(src) is not None:
            d[dst] = m[src]
    return d


@functools.lru_cache(maxsize=32)
def _parse(template: str, max_depth: int) -> gotemplate.Template:
    t = gotemplate.parse(template, max_depth)
    names = t.identifiers()
    if "messages" not in names and "response" not in names:
        t.append_response()
    return t


def render_template(template: str, *, system: str | None, messages: Iterable[Any], prompt: str | None = None,
                    response: str = "", tools: Any = None, think: bool | None = None,
                    limits: gotemplate.Limits | None = None) -> str:
    """Render an Ollama Go TEMPLATE exactly as Ollama's `template.Execute` does.

    `messages` are dicts or objects with role/content; `system` is prepended as a system message unless the
    messages start with one; `prompt` appends a user turn and `response` an assistant turn to continue.
    Templates that use `.Messages` get the whole conversation; older ones (`.System`/`.Prompt`/`.Response`)
    are rendered once per turn and the last render is cut after `.Response`, as Ollama does. Every render
    stays within `limits` (default: `gotemplate.Limits()`); one that breaks them is a TemplateLimitError.
    """
    limits = limits or gotemplate.Limits()
    msgs = [_msg(m) for m in messages]
    if system and not (msgs and msgs[0]["role"] == "system"):
        msgs.insert(0, {"role": "system", "content": system})
    if prompt:
        msgs.append({"role": "user", "content": prompt})
    if response:
        msgs.append({"role": "assistant", "content": response})
    try:
        tmpl = _parse(template, limits.max_depth)
    except InvalidInput as exc:
        raise type(exc)(f"TEMPLATE does not parse: {exc}") from None
    sys_text, collated = _collate(msgs)
    think_vars = {"Think": bool(think), "IsThinkSet": think is not None}
    names = tmpl.identifiers()
    try:
        if "messages" in names or "document" in names:
            return tmpl.execute({"System": sys_text, "Messages": [_go_message(m) for m in collated],
                                 "Tools": tools, "Response": "", **think_vars}, limits)
        out: list[str] = []
        state = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            out.append(tmpl.execute({**state, **think_vars}, limits))
            state.update(System="", Prompt="", Response="")

        for m in collated:
            if m["role"] == "system":
                if state["Prompt"] or state["Response"]:
                    flush()
                state["System"] = m["content"]
            elif m["role"] == "user":
                if state["Response"]:
                    flush()
                state["Prompt"] = m["content"]
            elif m["role"] == "assistant":
                state["Response"] = m["content"]
        out.append(tmpl.cut_after_response().execute({**state, **think_vars}, limits))
        if sum(map(len, out)) > limits.max_output:  # one render per turn: the whole prompt is bounded too
            raise gotemplate.TemplateLimitError(f"template output is larger than {limits.max_output} characters "
                                                "(LLMCTL_TEMPLATE_MAX_OUTPUT)")
        return "".join(out)
    except InvalidInput as exc:
        raise type(exc)(f"TEMPLATE failed: {exc}") from None


def completion_prompt(messages: Iterable[Any]) -> str:
    """A plain transcript a base model continues with an answer: system text, then Q:/A: turns.

    Ends with "A:" when the last turn is the user's, or inside the answer when it is an assistant's
    (a continuation).
    """
    system_text, msgs = _collate([_msg(m) for m in messages])
    out = system_text.strip() + "\n\n" if system_text.strip() else ""
    turns = [m for m in msgs if m["role"] != "system"]
    for i, m in enumerate(turns):
        text = m["content"].strip()
        if m["role"] == "assistant":
            out += f" {text}"
        else:
            out += ("\n\n" if i else "") + f"{COMPLETION_USER} {text}\n{COMPLETION_ASSISTANT}"
    return out


# -- requests -----------------------------------------------------------------------------------------------
@dataclass
class CompletionRequest:
    """What to send to llama-server: `POST endpoint` with `body`."""

    mode: str
    endpoint: str  # "/v1/chat/completions" or "/completion"
    body: dict[str, Any]
    prompt: str | None = None  # the rendered prompt (template and completion modes)
    messages: list[dict[str, Any]] = field(default_factory=list)  # the full conversation sent

    def fallback(self) -> "CompletionRequest | None":
        """A retry for an empty answer: same prompt, end-of-text ignored, no transcript stops, few tokens."""
        body = dict(self.body)
        if body.get("ignore_eos"):
            return None
        body["ignore_eos"] = True
        user_stops = [s for s in body.get("stop", []) if s not in COMPLETION_STOPS]
        body["stop"] = user_stops
        limit = body.get("n_predict", -1)
        body["n_predict"] = body["max_tokens"] = 48 if limit is None or limit < 0 else min(int(limit), 48)
        return CompletionRequest(self.mode, self.endpoint, body, self.prompt, self.messages)


def build_completion(model: Any, messages: Iterable[Any], params: Mapping[str, Any] | None = None, *,
                     stream: bool = True, mode: str | None = None, system: str | None = None,
                     limits: gotemplate.Limits | None = None) -> CompletionRequest:
    """The llama-server request for `messages` (history + the new user turn) on `model`.

    The model's SYSTEM (or `system`), MESSAGEs and PARAMETERs apply; `params` (request options, Ollama names)
    override the model's PARAMETERs key by key. A Go TEMPLATE renders within `limits`.
    """
    mode = mode or prompt_mode(model)
    if mode not in PROMPT_MODES:
        raise InvalidInput(f"unknown prompt mode {mode!r}")
    msgs = conversation(model, messages, system)
    effective = {**(getattr(model, "parameters", None) or {}), **(params or {})}
    sampling = sampling_params(effective)
    if mode == JINJA:
        body: dict[str, Any] = {"messages": msgs, "stream": stream, **sampling}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return CompletionRequest(mode, "/v1/chat/completions", body, None, msgs)
    if mode == TEMPLATE:
        prompt = render_template(model.template, system=None, messages=msgs, limits=limits)
    else:
        prompt = completion_prompt(msgs)
        sampling["stop"] = list(dict.fromkeys([*sampling.get("stop", []), *COMPLETION_STOPS]))
        if int(sampling.get("n_predict", -1)) < 0:
            sampling["n_predict"] = sampling["max_tokens"] = COMPLETION_MAX_TOKENS
        sampling.setdefault("repeat_penalty", COMPLETION_REPEAT_PENALTY)
    body = {"prompt": prompt, "stream": stream, "cache_prompt": True, **sampling}
    return CompletionRequest(mode, "/completion", body, prompt, msgs)
