"""`llmctl ps`: models loaded in the running gateway."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Optional

import typer

from llmctl.cli import render


def human_until(expires_at: str, forever: bool, now: float | None = None) -> str:
    """Ollama's UNTIL column: "4 minutes from now", "Forever", "Stopping...". """
    if forever:
        return "Forever"
    try:
        ts = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "-"
    delta = ts - (now or time.time())
    if delta <= 0:
        return "Stopping..."
    return f"{_duration(delta)} from now"


def _duration(seconds: float) -> str:
    """Ollama's format.humanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 730:
        return f"{hours // 24 // 30} months"
    return f"{s // 86400 // 365} years"


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
    from llmctl.api.serve import Client, ps as loaded

    with Client(ctx.obj, api_key=api_key) as client:
        rows = loaded(client)
    if json_:
        render.print_json([r.to_json() for r in rows])
        return
    header = ("NAME", "ID", "SIZE", "PROCESSOR", "UNTIL", "PORT")
    table = [header] + [
        (r.name if r.mode == "generate" else f"{r.name} ({r.mode})", r.id, render.human_size(r.size), r.processor,
         human_until(r.expires_at, r.forever), str(r.port or "-"))
        for r in rows
    ]
    # fixed columns that never wrap (as `ollama ps` prints), so scripts can cut them
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        render.stdout.print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), markup=False)
