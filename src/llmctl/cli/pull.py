"""`llmctl pull NAME`: from an OCI registry (tag or digest) or Hugging Face (`hf.co/ORG/REPO[:QUANT]`)."""

from __future__ import annotations

import typer

from llmctl.cli import render
from llmctl.cli.options import CaCert, Concurrency, Insecure, Json, Quiet


def pull(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model: NAME[:TAG], NAME@sha256:DIGEST, or hf.co/ORG/REPO[:QUANT]."),
    concurrency: Concurrency = 3,
    insecure: Insecure = False,
    ca_cert: CaCert = None,
    quiet: Quiet = False,
    json_: Json = False,
) -> None:
    """Pull a model into the local store. Interrupted pulls resume where they stopped.

    Examples:

      llmctl pull registry.example.com/team/model:q4

      llmctl pull localhost:5000/gemma3@sha256:3f1a...

      llmctl pull hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M
    """
    from llmctl.api.pull import pull as pull_model

    settings = ctx.obj
    with render.CliProgress(quiet=quiet or json_) as progress:
        try:
            result = pull_model(settings, name, progress=progress, concurrency=concurrency, insecure=insecure,
                                ca_cert=ca_cert)
        except KeyboardInterrupt:
            if not quiet:
                render.stderr.print("interrupted: partial downloads are kept; run the same command to resume")
            raise
    if json_:
        render.print_json(result.to_json())
    elif not quiet:
        parts = [f"{render.human_size(result.downloaded)} downloaded"]
        if result.resumed:
            parts.append(f"{render.human_size(result.resumed)} resumed")
        if result.skipped:
            parts.append(f"{render.human_size(result.skipped)} already here")
        render.stderr.print(f"pulled {result.name} ({result.digest[7:19]}, {render.human_size(result.total)}; "
                            f"{', '.join(parts)}) in {result.seconds:.1f}s", markup=False)
