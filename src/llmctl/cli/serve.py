"""`llmctl serve`: the OpenAI- and Ollama-compatible gateway, in the foreground."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli import render
from llmctl.cli.options import Gpus, SplitMode, TensorSplit, with_gpus


def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: from LLMCTL_HOST, else 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", min=0, max=65535, help="Port (default: from LLMCTL_HOST, else 11434); 0 picks a free one."),
    parallel: int = typer.Option(4, "--parallel", "-np", min=1, help="Slots per engine: concurrent requests per model."),
    keep_alive: str = typer.Option("5m", "--keep-alive", help="How long an idle model stays loaded: 5m, 1h, 30s, 0, -1 (forever)."),
    max_loaded: int = typer.Option(3, "--max-loaded", min=1, help="Models loaded at once; the least recently used idle one goes first."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLMCTL_API_KEY", help="Require `Authorization: Bearer KEY` (or `x-api-key: KEY`, as Anthropic clients send it)."),
    ctx_size: Optional[int] = typer.Option(None, "--ctx-size", "-c", min=1, help="Context per request (each slot); default: the model's num_ctx, else min(its context, 4096)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads per engine."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", "-ngl", help="Layers to offload to the GPU (CUDA engines)."),
    gpus: Gpus = None,
    split_mode: SplitMode = None,
    tensor_split: TensorSplit = None,
) -> None:
    """Serve stored models over the OpenAI, Anthropic and Ollama HTTP APIs, with a web console, until Ctrl-C.

    Models load on their first request (one llama-server per model, --parallel slots with continuous
    batching), stay loaded for --keep-alive after their last request, and the least recently used one is
    unloaded beyond --max-loaded. A browser opening the address gets the web console (/ui). Logs:
    $LLMCTL_HOME/logs (see `llmctl logs`).

    Examples:

      llmctl serve

      llmctl serve --port 8080 --parallel 8 --keep-alive 30m

      curl localhost:11434/v1/chat/completions -d '{"model":"gemma3:270m","messages":[{"role":"user","content":"Hi"}]}'
    """
    from llmctl.api.gateway import GatewayState
    from llmctl.errors import EngineError, UsageError
    from llmctl.names import parse_host
    from llmctl.runtime.engine import find_engine, processor_note
    from llmctl.runtime.scheduler import parse_keep_alive
    from llmctl.server.daemon import serve as run_gateway
    from llmctl.server.gateway import GatewayOptions

    if api_key is not None and not api_key.strip():
        # `--api-key "$KEY"` with KEY unset would otherwise serve with no key at all, silently
        raise UsageError("--api-key is empty: give the key, or leave the option out to serve without one")
    settings = with_gpus(ctx.obj, gpus, split_mode, tensor_split)  # reaches the scheduler's engines
    default = parse_host(settings.host)
    options = GatewayOptions(
        host=host or default.host, port=default.port if port is None else port, parallel=parallel,
        keep_alive=parse_keep_alive(keep_alive, 300.0), max_loaded=max_loaded, api_key=api_key,
        ctx_size=ctx_size, threads=threads, gpu_layers=gpu_layers,
    )

    def ready(state: GatewayState) -> None:
        render.stderr.print(f"llmctl gateway listening on {state.url}  (Ctrl-C to stop)")
        try:  # say which llama-server build serves, as `run --verbose` does
            note = processor_note(find_engine(settings), cuda_home=settings.cuda_home, verbose=True)
        except EngineError:
            note = None
        if note:
            render.stderr.print(note, markup=False)

    run_gateway(settings, options, on_ready=ready)
