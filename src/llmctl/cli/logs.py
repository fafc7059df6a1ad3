"""`llmctl logs`: the gateway's log, or a model engine's log, under $LLMCTL_HOME/logs."""

from __future__ import annotations

from typing import Optional

import typer

from llmctl.cli import render


def logs(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="A model: show its engine's log instead of the gateway's."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until Ctrl-C."),
    lines: int = typer.Option(50, "--tail", "-n", min=0, help="Lines to show from the end."),
    list_: bool = typer.Option(False, "--list", "-l", help="List the log files instead."),
) -> None:
    """Print the gateway log (`llmctl serve`) or, with NAME, that model's llama-server log.

    Examples:

      llmctl logs -f

      llmctl logs gemma3:270m -n 100
    """
    import sys

    from llmctl.api.serve import Client, follow as follow_file, log_files, log_for, tail

    settings = ctx.obj
    if list_:
        for path in log_files(settings):
            render.stdout.print(str(path))
        return
    if name is None:
        path = log_for(settings, None)
    else:
        with Client(settings, timeout=5.0) as client:
            path = log_for(settings, name, client)
    for line in tail(path, lines):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if follow:
        for line in follow_file(path):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
