"""llama-cpp-python as the engine of a `run` when no llama-server exists (a plain `pip install` of llmctl).

The model runs in a worker process (`python -m llmctl.runtime.inproc`), not in ours: a native crash (the
AMX SIGILL above all) then becomes a clear error instead of killing the CLI. The worker speaks JSON lines:
one config line (model, context, LoRA, chat template), then one request per line; it answers with
llama-server `/completion`-shaped events so `events.parse_event` reads both engines alike.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from llmctl.errors import EngineError
from llmctl.runtime import cpu
from llmctl.runtime.events import Delta, parse_event
from llmctl.runtime.prompt import JINJA, CompletionRequest

_SAMPLING_ARGS = {  # llama-server field -> llama-cpp-python argument
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "seed": "seed", "stop": "stop", "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta",
}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class InprocEngine:
    """The parent side: a worker process holding one model."""

    def __init__(self, model: Any, *, ctx_size: int, threads: int | None = None,
                 lora: tuple[tuple[Path, float], ...] = (), log_path: Path | None = None,
                 weights: Path | None = None) -> None:
        self.model = model
        from llmctl.runtime.prompt import prompt_mode

        self.prompt_mode = prompt_mode(model)
        if len(lora) > 1:
            raise EngineError("llama-cpp-python applies one LoRA adapter at most; install llama-server "
                              "(`llmctl runtime install`) to use several")
        self.log_path = log_path
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "llmctl.runtime.inproc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        config = {"model": str(weights or model.weights[0]), "n_ctx": ctx_size, "n_threads": threads,
                  "lora": [[str(p), s] for p, s in lora],
                  "chat_template": getattr(model, "chat_template", None) if self.prompt_mode == JINJA else None}
        self._send(config)
        first = self._read()
        if first is None or "error" in first:
            self.stop()
            raise self._died(first.get("error") if first else None)
        self.ready_seconds = time.monotonic() - t0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(None) from None

    def _read(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def _died(self, message: str | None) -> EngineError:
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        if rc == -signal.SIGILL:
            return EngineError(cpu.sigill_message("llama-cpp-python"))
        tail = ""
        if self.log_path and self.log_path.exists():
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-10:])
        what = message or (f"killed by {cpu.signal_name(rc)}" if cpu.signal_name(rc) else f"exited with {rc}")
        return EngineError(f"llama-cpp-python worker: {what}" + (f"\n{tail}" if tail else ""))

    def complete(self, req: CompletionRequest) -> Iterator[Delta]:
        self._send({"endpoint": req.endpoint, "body": req.body})
        while True:
            obj = self._read()
            if obj is None:
                raise self._died(None)
            if "error" in obj:
                raise EngineError(f"llama-cpp-python: {obj['error']}")
            yield parse_event("/completion", obj)
            if obj.get("stop"):
                return

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()


# -- the worker ---------------------------------------------------------------------------------------------
def _worker() -> None:  # pragma: no cover - runs in the child; exercised through InprocEngine
    out = sys.stdout.buffer

    def emit(obj: Any) -> None:
        out.write((json.dumps(obj) + "\n").encode())
        out.flush()

    config = json.loads(sys.stdin.readline())
    try:
        from llama_cpp import Llama

        kwargs: dict[str, Any] = {"model_path": config["model"], "n_ctx": config["n_ctx"], "verbose": False}
        if config.get("n_threads"):
            kwargs["n_threads"] = config["n_threads"]
        if config.get("lora"):
            kwargs["lora_path"], kwargs["lora_scale"] = config["lora"][0]
        llm = Llama(**kwargs)
        if config.get("chat_template"):
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos = llm.detokenize([llm.token_eos()]).decode(errors="replace")
            bos = llm.detokenize([llm.token_bos()]).decode(errors="replace")
            llm.chat_handler = Jinja2ChatFormatter(config["chat_template"], eos, bos).to_chat_handler()
    except Exception as exc:
        emit({"error": f"cannot load {config['model']}: {exc}"})
        return
    emit({"ready": True})
    for line in sys.stdin:
        req = json.loads(line)
        body = req["body"]
        try:
            _serve(llm, req["endpoint"], body, emit)
        except Exception as exc:
            emit({"error": str(exc)})


def _serve(llm: Any, endpoint: str, body: dict[str, Any], emit: Any) -> None:  # pragma: no cover - worker
    args = {dst: body[src] for src, dst in _SAMPLING_ARGS.items() if src in body}
    n = body.get("n_predict", body.get("max_tokens", -1))
    args["max_tokens"] = None if n is None or int(n) < 0 else int(n)
    if body.get("ignore_eos"):
        args["logit_bias"] = {llm.token_eos(): float("-inf")}
    t0 = time.monotonic()
    first = None
    count = 0
    finish = None
    if endpoint == "/completion":
        prompt = body["prompt"]
        n_prompt = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
        stream = llm.create_completion(prompt, stream=True, **args)
        for chunk in stream:
            c = chunk["choices"][0]
            if c.get("text"):
                first = first or time.monotonic()
                count += 1
                emit({"content": c["text"], "stop": False})
            finish = c.get("finish_reason") or finish
    else:
        messages = body["messages"]
        n_prompt = None
        stream = llm.create_chat_completion(messages, stream=True, **args)
        for chunk in stream:
            c = chunk["choices"][0]
            text = (c.get("delta") or {}).get("content")
            if text:
                first = first or time.monotonic()
                count += 1
                emit({"content": text, "stop": False})
            finish = c.get("finish_reason") or finish
    end = time.monotonic()
    first = first or end
    timings = {"prompt_n": n_prompt, "prompt_ms": (first - t0) * 1000, "predicted_n": count,
               "predicted_ms": (end - first) * 1000,
               "predicted_per_second": count / (end - first) if end > first else None}
    emit({"content": "", "stop": True, "stop_type": "limit" if finish == "length" else "eos",
          "tokens_evaluated": n_prompt, "tokens_predicted": count, "timings": timings,
          "prompt": body.get("prompt")})


if __name__ == "__main__":  # pragma: no cover
    _worker()
