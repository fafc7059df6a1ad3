"""The core of `llmctl run`: a chat session with one model, answers streamed as text chunks plus stats.

Where the answer comes from (`backend`), in order, unless told otherwise:

1. "gateway": a running `llmctl serve` at settings.host that knows the model (its Ollama /api/chat);
2. "llama-server": our own llama-server child, started for the session and stopped when it closes;
3. "llama-cpp-python": when no llama-server exists at all, the model runs through llama-cpp-python in a
   worker process (slower, one LoRA at most), so a plain `pip install` still answers.

Modelfile SYSTEM, MESSAGE, TEMPLATE, PARAMETER and ADAPTER apply; `params` (Ollama names) override
PARAMETERs; `lora` adds adapters. An answer is never empty: when the engine ends before any text (a base
model that stops at once), the request is retried once with end-of-text ignored. Nothing here prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from llmctl.errors import EngineError, InvalidInput, NotFound, UsageError
from llmctl.progress import Progress
from llmctl.settings import Settings

AUTO, GATEWAY, SERVER, INPROC = "auto", "gateway", "llama-server", "llama-cpp-python"
BACKENDS = (AUTO, GATEWAY, SERVER, INPROC)


@dataclass
class RunStats:
    model: str
    backend: str
    prompt_mode: str | None = None
    done_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    load_seconds: float = 0.0
    prompt_seconds: float | None = None
    generate_seconds: float | None = None
    total_seconds: float = 0.0
    tokens_per_second: float | None = None
    first_token_seconds: float | None = None
    prompt: str | None = None  # the prompt the engine evaluated (template and completion modes)
    retried: bool = False

    def to_json(self) -> dict[str, Any]:
        ns = lambda s: int(s * 1e9) if s is not None else None  # noqa: E731
        return {
            "model": self.model,
            "backend": self.backend,
            "prompt_mode": self.prompt_mode,
            "done_reason": self.done_reason,
            "retried": self.retried,
            "prompt": self.prompt,
            "timings": {
                "load_seconds": round(self.load_seconds, 4),
                "first_token_seconds": _r(self.first_token_seconds),
                "prompt_seconds": _r(self.prompt_seconds),
                "generate_seconds": _r(self.generate_seconds),
                "total_seconds": round(self.total_seconds, 4),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "tokens_per_second": _r(self.tokens_per_second),
            },
            # Ollama's field names, for tools that read `ollama run --verbose` style numbers
            "total_duration": ns(self.total_seconds),
            "load_duration": ns(self.load_seconds),
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": ns(self.prompt_seconds),
            "eval_count": self.completion_tokens,
            "eval_duration": ns(self.generate_seconds),
        }


def _r(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None


class Reply:
    """Iterate for the answer's text chunks; afterwards `text` and `stats` hold the whole answer."""

    def __init__(self, chunks: Iterator[str], stats: RunStats, on_close: Callable[[], None] | None = None) -> None:
        self._chunks = chunks
        self.stats = stats
        self.text = ""
        self._on_close = on_close
        self.session: Session | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self._chunks:
                self.text += chunk
                yield chunk
        finally:
            if self._on_close:
                self._on_close()
                self._on_close = None

    def read(self) -> str:
        for _ in self:
            pass
        return self.text

    def to_json(self) -> dict[str, Any]:
        return {"response": self.text, **self.stats.to_json()}


def parse_lora(spec: str) -> tuple[Path, float]:
    """`FILE[:SCALE]` -> (path, scale); the scale defaults to 1.0."""
    path, scale = spec, 1.0
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
            path = head
        except ValueError:
            path = spec
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFound(f"--lora {spec}: no such file")
    return p.resolve(), scale


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`--param k=v` items, typed and checked as Modelfile PARAMETER lines are (`stop` may repeat)."""
    from llmctl.modelfile import coerce_parameter

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE, e.g. --param temperature=0.2")
        try:
            typed = coerce_parameter(key, value)
        except InvalidInput as exc:
            raise UsageError(f"--param {item}: {exc}") from None
        if isinstance(typed, list):
            out[key] = [*out.get(key, []), *typed]
        else:
            out[key] = typed
    return out


class Session:
    """A conversation with one model. `start()` picks the backend; `chat()` answers; `close()` cleans up."""

    def __init__(self, settings: Settings, name: str, *, params: Mapping[str, Any] | None = None,
                 lora: Sequence[tuple[Path, float]] = (), system: str | None = None, backend: str = AUTO,
                 progress: Progress | None = None, ctx_size: int | None = None, threads: int | None = None,
                 gpu_layers: int | None = None) -> None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
        self.settings = settings
        self.name = name
        self.params: dict[str, Any] = dict(params or {})
        self.lora = tuple(lora)
        self.system = system
        self.requested = backend
        self.progress = progress
        self.overrides = {"ctx_size": ctx_size, "threads": threads, "gpu_layers": gpu_layers}
        self.model: Any = None
        self.backend: str | None = None
        self.engine: Any = None  # EngineProcess | InprocEngine
        self.gateway: str | None = None  # the URL of the gateway that answers, when backend is "gateway"
        self._gateway_client: Any = None  # llmctl.api.client.Client
        self._options: Any = None
        self._load_seconds = 0.0
        self.last_request: Any = None  # the last CompletionRequest sent to a local engine

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "Session":
        from llmctl.api.models import ensure_model

        self.model = ensure_model(self.settings, self.name, self.progress)
        self.model.require_gguf(self.name)
        if self.requested in (AUTO, GATEWAY) and not self.lora:
            if self._use_gateway():
                return self
            if self.requested == GATEWAY:
                from llmctl.api.gateway import gateway_url

                where = gateway_url(self.settings)
                raise EngineError(f"no llmctl gateway with {self.name} answers at {where} (start one: `llmctl serve`)")
        elif self.requested == GATEWAY:
            raise UsageError("--lora needs a local engine; leave out --backend gateway")
        self._start_engine()
        return self

    def _use_gateway(self) -> bool:
        """Whether a running gateway knows the model; if so, this session talks to it."""
        from llmctl.api.client import Client, find_gateway

        url = find_gateway(self.settings)
        if url is None:
            return False
        client = Client(self.settings, url=url, timeout=None)  # no read timeout: an answer may take long
        if not client.has_model(self.name):
            client.close()
            return False
        self.gateway, self._gateway_client, self.backend = url, client, GATEWAY
        return True

    def _engine_options(self) -> Any:
        from llmctl.runtime.launch import EngineOptions, gpu_overrides

        return EngineOptions.for_model(self.model, self.params, parallel=1, lora=self.lora, **self.overrides,
                                       **gpu_overrides(self.settings))

    def _start_engine(self) -> None:
        from llmctl.runtime import inproc
        from llmctl.runtime.engine import NO_ENGINE, find_engine
        from llmctl.runtime.launch import DEFAULT_CTX, merge_lora
        from llmctl.runtime.process import EngineProcess

        options = self._engine_options()
        t0 = time.monotonic()
        engine = None
        if self.requested in (AUTO, SERVER):
            try:
                engine = find_engine(self.settings)
            except EngineError as exc:  # only "none at all" falls back to llama-cpp-python
                if self.requested == SERVER or exc.message != NO_ENGINE or not inproc.available():
                    raise
        if engine is not None:
            self.engine = EngineProcess.start(self.settings, self.model, options, engine=engine, die_with_parent=True)
            self.backend = SERVER
        else:
            if not inproc.available():
                raise EngineError("llama-cpp-python is not installed; run `llmctl runtime install` or use llama-server")
            ctx = options.ctx_size or min(int(self.model.facts.context_size or DEFAULT_CTX), DEFAULT_CTX)
            self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
            from llmctl.runtime.splits import engine_weights

            self.engine = inproc.InprocEngine(self.model, ctx_size=ctx, threads=options.threads,
                                              lora=tuple(merge_lora(self.model.adapters, options.lora)),
                                              log_path=self.settings.logs_dir / "inproc.log",
                                              weights=engine_weights(self.settings, self.model))
            self.backend = INPROC
        self._options = options
        self._load_seconds = time.monotonic() - t0

    def close(self) -> None:
        if self._gateway_client is not None:
            self._gateway_client.close()
            self._gateway_client = None
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def __enter__(self) -> "Session":
        return self.start() if self.model is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def prompt_mode(self) -> str | None:
        if self.engine is not None:
            return str(self.engine.prompt_mode)
        if self.model is not None:
            from llmctl.runtime.prompt import prompt_mode

            return prompt_mode(self.model)
        return None

    # -- answering ------------------------------------------------------------------------------------------
    def chat(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None) -> Reply:
        """Answer the conversation `messages` (history + the new user turn, without the model's SYSTEM)."""
        if self.model is None:
            self.start()
        merged = {**self.params, **(params or {})}
        if self.backend in (SERVER, INPROC) and self._options != self._engine_options():
            self.close()  # a load-time parameter (num_ctx, num_thread...) changed: restart the engine
            self._start_engine()
        load = self._load_seconds
        self._load_seconds = 0.0
        stats = RunStats(model=self.name, backend=str(self.backend), prompt_mode=self.prompt_mode, load_seconds=load)
        return Reply(self._answer(list(messages), merged, stats), stats)

    def _attempts(self, messages: list[Mapping[str, Any]], params: dict[str, Any]) -> Iterator[Iterator[Any]]:
        if self.backend == GATEWAY:
            msgs = [dict(m) for m in messages]
            if self.system is not None and not (msgs and msgs[0].get("role") == "system"):
                msgs.insert(0, {"role": "system", "content": self.system})
            yield self._gateway_client.chat(self.name, msgs, params)
            return
        from llmctl.runtime.prompt import build_completion

        self._check_alive()
        req = build_completion(self.model, messages, params, system=self.system, mode=self.engine.prompt_mode)
        self.last_request = req
        yield self.engine.complete(req)
        retry = req.fallback()
        if retry is not None:
            yield self.engine.complete(retry)

    def _check_alive(self) -> None:
        if self.backend == SERVER and self.engine is not None:
            self.engine.check()

    def _answer(self, messages: list[Mapping[str, Any]], params: dict[str, Any], stats: RunStats) -> Iterator[str]:
        t0 = time.monotonic()
        started = False
        pending = ""
        final = None
        for n, attempt in enumerate(self._attempts(messages, params)):
            if n:
                stats.retried = True
            for d in attempt:
                if d.text:
                    if started:
                        yield d.text
                    else:
                        pending += d.text
                        if pending.strip():
                            started = True
                            stats.first_token_seconds = time.monotonic() - t0
                            yield pending.lstrip()
                if d.done:
                    final = d
            if started:
                break
        stats.total_seconds = time.monotonic() - t0 + stats.load_seconds
        if final is not None:
            stats.done_reason = final.finish_reason
            stats.prompt_tokens = final.prompt_tokens
            stats.completion_tokens = final.completion_tokens
            stats.prompt = final.prompt
            t = final.timings or {}
            if t.get("prompt_ms") is not None:
                stats.prompt_seconds = float(t["prompt_ms"]) / 1000
            if t.get("predicted_ms") is not None:
                stats.generate_seconds = float(t["predicted_ms"]) / 1000
            if t.get("predicted_per_second"):
                stats.tokens_per_second = float(t["predicted_per_second"])
            if stats.prompt_tokens is None and t.get("prompt_n") is not None:
                stats.prompt_tokens = int(t["prompt_n"]) + int(t.get("cache_n") or 0)
            if stats.completion_tokens is None and t.get("predicted_n") is not None:
                stats.completion_tokens = int(t["predicted_n"])


def run(settings: Settings, name: str, prompt: str, *, params: Mapping[str, Any] | None = None,
        lora: Sequence[tuple[Path, float]] = (), system: str | None = None, backend: str = AUTO,
        progress: Progress | None = None) -> Reply:
    """One-shot: start a session, answer `prompt`, stop the session when the reply is consumed or closed."""
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    session = Session(settings, name, params=params, lora=lora, system=system, backend=backend, progress=progress)
    session.start()
    try:
        reply = session.chat([{"role": "user", "content": prompt}])
    except BaseException:
        session.close()
        raise
    reply._on_close = session.close
    reply.session = session
    return reply


__all__ = ["BACKENDS", "Reply", "RunStats", "Session", "parse_lora", "parse_params", "run"]
