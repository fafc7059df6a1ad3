"""`llmctl list` / `ls`."""

from __future__ import annotations

import typer


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
    from llmctl.cli import views  # shared with the fast dispatcher (cli/fast.py): the same bytes either way

    views.list_models(ctx.obj, json_=json_, quiet=quiet)
