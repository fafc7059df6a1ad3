"""`llmctl inspect NAME`."""

from __future__ import annotations

import typer

from llmctl.cli import render


def inspect(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
) -> None:
    """Print a model's OCI manifest and config as JSON.

    Examples:

      llmctl inspect gemma3:270m | jq .config.config
    """
    from llmctl.api.manage import inspect as inspect_model

    render.print_json(inspect_model(ctx.obj, name))
