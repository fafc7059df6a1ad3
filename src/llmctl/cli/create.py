"""`llmctl create NAME -f Modelfile`."""

from __future__ import annotations

from pathlib import Path

import typer

from llmctl.cli import render


def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name for the new model, e.g. mymodel or team/mymodel:v1."),
    file: Path = typer.Option(Path("Modelfile"), "--file", "-f", help="Path to the Modelfile."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Create a model from a Modelfile.

    FROM may name a stored model (its weights are reused, not copied), a GGUF file, or the folder or glob
    of a split GGUF. Relative paths are relative to the Modelfile's folder.

    Examples:

      llmctl create mygemma -f modelfiles/gemma3-270m.Modelfile

      llmctl create team/assistant:v2 -f ./Modelfile
    """
    from llmctl.api.create import create as create_model, read_modelfile
    from llmctl.api.models import short

    settings = ctx.obj
    modelfile = read_modelfile(file)
    with render.CliProgress(quiet=quiet) as progress:
        created = create_model(settings, name, modelfile, progress=progress)
    if not quiet:
        render.stderr.print(
            f"created {short(settings, created.reference)} ({created.digest[7:19]}): "
            f"{render.human_size(created.new_bytes)} new, {render.human_size(created.reused_bytes)} reused"
        )
