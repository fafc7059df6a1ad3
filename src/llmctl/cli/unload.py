"""`llmctl unload` / `llmctl stop`: stop a model's engine in the running gateway."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli import render


def unload(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Loaded model to stop."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLMCTL_API_KEY", help="The gateway's API key."),
) -> None:
    """Unload NAME from the gateway now (as `ollama stop`); requests in flight for it fail.

    Examples:

      llmctl unload gemma3:270m

      llmctl stop gemma3:270m
    """
    from llmctl.api.serve import Client, unload as do_unload
    from llmctl.errors import NotFound

    with Client(ctx.obj, api_key=api_key) as client:
        if not do_unload(client, name):
            raise NotFound(f"model {name!r} is not loaded", hint="`llmctl ps` lists loaded models")
    render.stdout.print(f"unloaded {name}")
