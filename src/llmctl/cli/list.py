"""`llmctl list` / `ls`."""

from __future__ import annotations

import typer

from llmctl.cli import render


def list_(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print names."),
) -> None:
    """List stored models: NAME, ID, SIZE, MODIFIED.

    Examples:

      llmctl list

      llmctl ls --json | jq -r '.[].name'
    """
    from rich.table import Table

    from llmctl.api.manage import list_models

    models = list_models(ctx.obj)
    if json_:
        render.print_json([m.to_json() for m in models])
        return
    if quiet:
        for m in models:
            render.stdout.print(m.name)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("NAME", "ID", "SIZE", "MODIFIED"):
        table.add_column(col)
    for m in models:
        table.add_row(m.name, m.id, render.human_size(m.size), render.human_ago(m.modified))
    render.stdout.print(table)
