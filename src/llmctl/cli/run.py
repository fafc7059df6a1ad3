"""`llmctl run NAME [PROMPT]`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, List, Optional

import typer

from llmctl.cli import render
from llmctl.cli.options import Gpus, SplitMode, TensorSplit, with_gpus


def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name, e.g. gemma3:270m."),
    prompt: Optional[List[str]] = typer.Argument(None, help="The prompt. Without one: stdin if piped, else a chat."),
    param: List[str] = typer.Option([], "--param", "-p", metavar="NAME=VALUE",
                                    help="Override a Modelfile PARAMETER, e.g. temperature=0 (repeatable)."),
    lora: List[str] = typer.Option([], "--lora", metavar="FILE[:SCALE]",
                                   help="Apply a GGUF LoRA adapter, scale 1.0 unless given (repeatable)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt, instead of the model's SYSTEM."),
    json_: bool = typer.Option(False, "--json", help="Print the whole response with timings as JSON at the end."),
    verbose: bool = typer.Option(False, "--verbose", help="Print timings to stderr after the answer."),
    backend: str = typer.Option("auto", "--backend",
                                help="auto (a running `llmctl serve`, else a llama-server child, else "
                                     "llama-cpp-python), gateway, llama-server or llama-cpp-python."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output on stderr."),
    num_gpu: Optional[int] = typer.Option(None, "--num-gpu", help="Layers to offload to the GPU (Ollama's num_gpu; "
                                          "default: as many as fit in free VRAM; 0: CPU only; -1: all)."),
    gpus: Gpus = None,
    split_mode: SplitMode = None,
    tensor_split: TensorSplit = None,
) -> None:
    """Run a model: answer PROMPT, or chat interactively.

    The answer streams to stdout. Piped stdin is the prompt (before PROMPT words, if any). Without a prompt
    on a terminal, an interactive chat starts (/? for its commands). The model's SYSTEM, TEMPLATE,
    PARAMETERs, MESSAGEs and ADAPTERs apply; --param and --lora add to them. When a `llmctl serve` gateway
    answers at LLMCTL_HOST, run uses it; otherwise it starts its own llama-server for the run.

    Examples:

      llmctl run gemma3:270m "Why is the sky blue?"

      echo "Summarize: ..." | llmctl run gemma3:270m

      llmctl run gemma3:270m --param temperature=0 --param seed=42 --json "hi"

      llmctl run mymodel --lora ./adapter.gguf:0.5 "hello"
    """
    from llmctl.api.run import parse_lora, parse_params
    from llmctl.runtime import gpu

    settings = with_gpus(ctx.obj, gpus, split_mode, tensor_split)
    params = parse_params(param)
    if num_gpu is not None:
        params["num_gpu"] = num_gpu
    if backend != "gateway":  # GPUs asked for by name: say where the model runs even without --verbose
        _processor_line(settings, verbose or bool(gpu.parse_gpus(gpus)), quiet)
    options = _RunOptions(params, [parse_lora(x) for x in lora], system, backend, verbose, quiet)
    words = _prompt(prompt, json_)
    if words is None:
        _chat(settings, name, options)
    else:
        _answer(settings, name, words, options, json_)


@dataclass(frozen=True)
class _RunOptions:
    """What `run` passes on to a one-shot answer and to a chat alike."""

    params: dict[str, Any]
    adapters: list[Any]
    system: str | None
    backend: str
    verbose: bool
    quiet: bool


def _prompt(prompt: list[str] | None, json_: bool) -> str | None:
    """The prompt: piped stdin, then the PROMPT words. None: no prompt on a terminal, so a chat."""
    from llmctl.errors import UsageError

    words = " ".join(prompt or []).strip()
    piped = not sys.stdin.isatty()
    if piped:
        data = sys.stdin.read().strip()
        words = " ".join(x for x in (data, words) if x)
    if words:
        return words
    if piped:
        raise UsageError("no prompt: stdin was empty and no PROMPT was given")
    if json_:
        raise UsageError("--json needs a prompt")
    return None


def _answer(settings: Any, name: str, words: str, options: _RunOptions, json_: bool) -> None:
    """Stream one answer to stdout (or print it whole as JSON), then the timings with --verbose."""
    from llmctl.api.run import run as run_once

    with render.CliProgress(quiet=options.quiet) as progress:
        with _loading(options.quiet, f"loading {name}"):
            reply = run_once(settings, name, words, params=options.params, lora=options.adapters,
                             system=options.system, backend=options.backend, progress=progress)
    if json_:
        reply.read()
        render.print_json(reply.to_json())
        return
    out = sys.stdout
    for chunk in reply:
        out.write(chunk)
        out.flush()
    out.write("\n")
    out.flush()
    if options.verbose:
        from llmctl.cli.chat import stats_lines

        render.stderr.print("\n".join(stats_lines(reply.stats)), markup=False)


def _processor_line(settings, verbose: bool, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    """One line on stderr when a GPU could be used but is not (and why); with --verbose, always where."""
    if quiet:
        return
    from llmctl.errors import EngineError
    from llmctl.runtime.engine import find_engine, processor_note

    try:
        note = processor_note(find_engine(settings), cuda_home=settings.cuda_home, verbose=verbose)
    except EngineError:
        return
    if note:
        render.stderr.print(note, markup=False)


class _loading:
    """A transient spinner on stderr while the engine loads (terminals only)."""

    def __init__(self, quiet: bool, text: str) -> None:
        self.status = None
        if not quiet and render.stderr.is_terminal:
            self.status = render.stderr.status(text, spinner="dots")

    def __enter__(self) -> None:
        if self.status is not None:
            self.status.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)


def _chat(settings: Any, name: str, options: _RunOptions) -> None:
    from llmctl.api.run import Session
    from llmctl.cli.chat import repl

    def make(model_name: str) -> Session:
        with render.CliProgress(quiet=options.quiet) as progress, _loading(options.quiet, f"loading {model_name}"):
            return Session(settings, model_name, params=options.params, lora=options.adapters, system=options.system,
                           backend=options.backend, progress=progress).start()

    session = make(name)
    try:
        repl(session, history=settings.home / "history", verbose=options.verbose, make_session=make)
    finally:
        session.close()
