"""`llmctl pull NAME`: from an OCI registry (tag or digest) or Hugging Face (`hf.co/ORG/REPO[:QUANT]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from llmctl.cli import render
from llmctl.cli.options import CaCert, Concurrency, Insecure, Json, Quiet, folder


def pull(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model: NAME[:TAG], NAME@sha256:DIGEST, or hf.co/ORG/REPO[:QUANT]."),
    concurrency: Concurrency = 3,
    insecure: Insecure = False,
    ca_cert: CaCert = None,
    export_dir: Optional[Path] = typer.Option(
        None, "--export", parser=folder, help="Then lay the model out in this folder (empty or missing) as `llmctl export` does."),
    quiet: Quiet = False,
    json_: Json = False,
) -> None:
    """Pull a model into the local store. Interrupted pulls resume where they stopped.

    Examples:

      llmctl pull registry.example.com/team/model:q4

      llmctl pull localhost:5000/gemma3@sha256:3f1a...

      llmctl pull hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M

      llmctl pull hf.co/Qwen/Qwen3-0.6B --export ./qwen3 && vllm serve ./qwen3
    """
    settings = ctx.obj
    options = {"concurrency": concurrency, "insecure": insecure, "ca_cert": ca_cert}
    with render.CliProgress(quiet=quiet or json_) as progress:
        try:
            result = _pull(settings, name, export_dir, progress, options)
        except KeyboardInterrupt:
            if not quiet:
                render.stderr.print("interrupted: partial downloads are kept; run the same command to resume")
            raise
    if json_:
        render.print_json(result.to_json())
    elif not quiet:
        pulled = result.pulled if export_dir is not None else result
        render.stderr.print(_pulled_line(pulled), markup=False)
        if export_dir is not None:
            from llmctl.cli.export import exported_line

            render.stderr.print(exported_line(result.exported), markup=False)


def _pull(settings: Any, name: str, export_dir: Path | None, progress: Any, options: dict[str, Any]) -> Any:
    if export_dir is None:
        from llmctl.api.pull import pull as pull_model

        return pull_model(settings, name, progress=progress, **options)
    from llmctl.api.export import pull_and_export

    return pull_and_export(settings, name, export_dir, progress=progress, **options)


def _pulled_line(result: Any) -> str:
    parts = [f"{render.human_size(result.downloaded)} downloaded",
             *render.sizes((result.resumed, "resumed"), (result.skipped, "already here"))]
    return (f"pulled {result.name} ({result.digest[7:19]}, {render.human_size(result.total)}; "
            f"{', '.join(parts)}) in {result.seconds:.1f}s")
