"""`llmctl status`: is the gateway up, where, since when, with what loaded."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli import render


def status(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLMCTL_API_KEY", help="The gateway's API key."),
) -> None:
    """Show the gateway's URL, version, uptime, engine and loaded models. Exit code 8 if none is running.

    Examples:

      llmctl status

      llmctl status --json
    """
    from llmctl.api.serve import Client, status as get_status

    with Client(ctx.obj, api_key=api_key) as client:
        info = get_status(ctx.obj, client)
    if json_:
        render.print_json(info)
        return
    out = render.stdout
    out.print(f"gateway:  running at {info['url']} (llmctl {info['version']})")
    if info.get("uptime") is not None:
        out.print(f"uptime:   {_human_seconds(float(info['uptime']))}")
    if info.get("pid"):
        out.print(f"pid:      {info['pid']}")
    if info.get("engine"):
        out.print(f"engine:   {info['engine']} ({info.get('engine_version') or '?'}, {info.get('engine_kind') or '?'})")
    if info.get("log"):
        out.print(f"log:      {info['log']}")
    loaded = info.get("loaded") or []
    names = ", ".join(m["name"] for m in loaded) or "none"
    out.print(f"loaded:   {len(loaded)} ({names})")


def _human_seconds(s: float) -> str:
    s = int(s)
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    shown = [f"{v}{u}" for v, u in parts if v]
    return " ".join(shown[:2]) or "0s"

