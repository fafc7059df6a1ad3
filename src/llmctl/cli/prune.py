"""`llmctl prune`."""

from __future__ import annotations

import typer

from llmctl.cli import render


def prune(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete blobs no model references and temp files of killed commands.

    Waits for running llmctl commands that write to the store.

    Examples:

      llmctl prune
    """
    from llmctl.api.manage import prune as prune_store

    result = prune_store(ctx.obj)
    if json_:
        render.print_json({"blobs_removed": result.removed, "temp_files_removed": result.temp_files, "bytes_freed": result.bytes})
        return
    render.stderr.print(
        f"removed {result.removed} blobs and {result.temp_files} temp files, freed {render.human_size(result.bytes)}"
    )
