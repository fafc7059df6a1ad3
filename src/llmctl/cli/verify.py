"""`llmctl verify`."""

from __future__ import annotations

import typer

from llmctl.cli import render
from llmctl.errors import IntegrityError


def verify(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-hash every blob and check every model's manifest; exit 5 on corruption.

    Examples:

      llmctl verify
    """
    from llmctl.api.manage import verify as verify_store

    problems = verify_store(ctx.obj)
    if json_:
        render.print_json({"ok": not problems, "problems": problems})
    else:
        for p in problems:
            render.stderr.print(f"corrupt: {p}", markup=False)
        if not problems:
            render.stderr.print("store ok: every blob matches its digest")
    if problems:
        raise IntegrityError(f"{len(problems)} problem(s) in {ctx.obj.store_dir}; `llmctl rm` the affected models and pull or create them again")
