"""`llmctl load`: load a model into the running gateway now, so the first request is fast."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli import render


def load(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model to load, e.g. gemma3:270m."),
    keep_alive: Optional[str] = typer.Option(None, "--keep-alive", help="Keep it loaded this long: 5m, 1h, -1 (forever)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLMCTL_API_KEY", help="The gateway's API key."),
) -> None:
    """Load NAME into the running gateway (`llmctl serve`) and keep it for --keep-alive.

    Examples:

      llmctl load gemma3:270m

      llmctl load gemma3:270m --keep-alive -1
    """
    from llmctl.api.serve import Client, load as do_load

    with Client(ctx.obj, api_key=api_key) as client:
        answer = do_load(client, name, keep_alive)
    seconds = (answer.get("load_duration") or 0) / 1e9
    took = f" in {seconds:.2f}s" if seconds else " (already loaded)"
    render.stdout.print(f"loaded {name}{took}")
