"""`llmctl tag SRC DST`."""

from __future__ import annotations

import typer

from llmctl.cli import render


def tag(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Existing model."),
    target: str = typer.Argument(..., help="New name for it."),
) -> None:
    """Give a stored model another name (no data is copied).

    Examples:

      llmctl tag gemma3:270m localhost:5000/team/gemma3:270m
    """
    from llmctl.api.manage import tag as tag_model
    from llmctl.api.models import short

    dst = tag_model(ctx.obj, source, target)
    render.stderr.print(f"tagged {short(ctx.obj, dst)}")
