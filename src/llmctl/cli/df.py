"""`llmctl df`."""

from __future__ import annotations

import typer

from llmctl.cli import render


def df(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show store usage: total, shared between models, and reclaimable bytes.

    Examples:

      llmctl df --json
    """
    from rich.table import Table

    from llmctl.api.manage import disk_usage

    usage = disk_usage(ctx.obj)
    if json_:
        render.print_json(usage.to_json())
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("MODELS", "TOTAL", "UNIQUE", "SHARED", "RECLAIMABLE"):
        table.add_column(col)
    table.add_row(str(usage.models), render.human_size(usage.total), render.human_size(usage.unique),
                  render.human_size(usage.shared), render.human_size(usage.reclaimable))
    render.stdout.print(table)
    render.stdout.print(f"store: {ctx.obj.store_dir}")
