"""`llmctl ps`: models loaded in the running gateway."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli.views import human_until

__all__ = ["human_until", "ps"]


def ps(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLMCTL_API_KEY", help="The gateway's API key."),
) -> None:
    """List models loaded in the gateway: NAME, ID, SIZE, PROCESSOR, UNTIL, PORT.

    Examples:

      llmctl ps

      llmctl ps --json | jq -r '.[].name'
    """
    from llmctl.cli import views  # shared with the fast dispatcher (cli/fast.py): the same bytes either way

    views.loaded_models(ctx.obj, json_=json_, api_key=api_key)
