"""`llmctl show NAME`."""

from __future__ import annotations

import typer


def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    modelfile: bool = typer.Option(False, "--modelfile", help="Print a Modelfile that re-creates the model."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
    license: bool = typer.Option(False, "--license", help="Print the license text."),
) -> None:
    """Show a model's architecture, parameters, quantization, context, system prompt, parameters, license.

    Examples:

      llmctl show gemma3:270m

      llmctl show gemma3:270m --modelfile > Modelfile
    """
    from llmctl.cli import views  # shared with the fast dispatcher (cli/fast.py): the same bytes either way

    views.show_model(ctx.obj, name, modelfile=modelfile, json_=json_, license=license)
