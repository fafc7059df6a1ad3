"""`llmctl logout [REGISTRY]`."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli import render


def logout(
    ctx: typer.Context,
    registry: Optional[str] = typer.Argument(None, help="Registry host[:port]; default: the LLMCTL_REGISTRY one."),
) -> None:
    """Remove a registry's stored credentials.

    Examples:

      llmctl logout registry.example.com
    """
    from llmctl.api.login import logout as do_logout

    settings = ctx.obj
    registry = registry or settings.registry
    if do_logout(settings, registry):
        render.stderr.print(f"removed the credentials for {registry}", markup=False)
    else:
        render.stderr.print(f"not logged in to {registry}", markup=False)
