"""`llmctl export NAME DIR`: a stored model as the folder vLLM, SGLang and transformers load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from llmctl.cli import render
from llmctl.cli.options import folder


def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name (pulled first if it is not stored)."),
    directory: Path = typer.Argument(
        ..., parser=folder, help="Folder to create; it must be empty or missing unless --force."),
    force: bool = typer.Option(False, "--force", "-f", help="Write into a non-empty folder, replacing same-named files."),
    copy: bool = typer.Option(False, "--copy", help="Always copy; never hard-link the store's blobs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Lay a model out as a folder: config.json, tokenizer and safetensors shards for vLLM, SGLang and
    transformers, or the .gguf with its companions. Files are hard links into the store when the folder is on
    the same file system (use --copy to edit them), copies otherwise; every file is checked against its digest.

    Examples:

      llmctl export myorg/qwen3:0.6b ./qwen3 && vllm serve ./qwen3

      llmctl export gemma3:270m ./gemma --copy
    """
    from llmctl.api.export import export as export_model

    settings = ctx.obj
    with render.CliProgress(quiet=quiet or json_) as progress:
        result = export_model(settings, name, directory, force=force, copy=copy, progress=progress)
    if json_:
        render.print_json(result.to_json())
    elif not quiet:
        render.stderr.print(exported_line(result), markup=False)


def exported_line(result: Any) -> str:
    """The result line of an export (`export`, `pull --export`)."""
    how = render.sizes((result.linked, "linked"), (result.copied, "copied"))
    return (f"exported {result.name} ({result.format}, {len(result.files)} files; {', '.join(how) or 'empty'}) "
            f"to {result.directory}")
