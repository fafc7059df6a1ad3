"""`llmctl rm NAME...`."""

from __future__ import annotations

from typing import List

import typer

from llmctl.cli import render


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., help="Models to remove."),
) -> None:
    """Remove models. Blobs are deleted once no other model uses them.

    All names are checked first: if one does not exist, nothing is removed.

    Examples:

      llmctl rm mymodel team/other:v1
    """
    from llmctl.api.manage import remove

    result = remove(ctx.obj, names)
    for name in result.names:
        render.stderr.print(f"deleted {name}")
    if result.deferred:
        render.stderr.print("another llmctl process is writing to the store; run `llmctl prune` later to free space")
    elif result.freed:
        render.stderr.print(f"freed {render.human_size(result.freed)}")
