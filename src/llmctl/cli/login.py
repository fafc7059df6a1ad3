"""`llmctl login [REGISTRY]`: check credentials and store them in Docker's config.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from llmctl.cli import render


def login(
    ctx: typer.Context,
    registry: Optional[str] = typer.Argument(None, help="Registry host[:port]; default: the LLMCTL_REGISTRY one."),
    username: Optional[str] = typer.Option(None, "--username", "-u", help="User name."),
    password: Optional[str] = typer.Option(None, "--password", "-p", help="Password (prefer --password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow plain HTTP and unverified TLS for this registry."),
    ca_cert: Optional[Path] = typer.Option(None, "--ca-cert", help="Extra CA certificate (PEM) to trust."),
) -> None:
    """Log in to a registry; credentials go to Docker's config.json, shared with docker, skopeo and oras.

    They are checked against the registry first, and kept in $DOCKER_CONFIG/config.json (default
    ~/.docker/config.json) or the credential helper it names.

    Examples:

      echo "$TOKEN" | llmctl login registry.example.com -u me --password-stdin

      llmctl login localhost:5000 -u me
    """
    from llmctl.api.login import login as do_login
    from llmctl.errors import UsageError

    settings = ctx.obj
    registry = registry or settings.registry
    if password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin cannot be used together")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        render.stderr.print("warning: --password on the command line is visible to other users; use --password-stdin")
    interactive = sys.stdin.isatty() and not password_stdin
    if not username:
        if not interactive:
            raise UsageError("--username is required when stdin is not a terminal")
        username = typer.prompt("Username")
    if password is None:
        if not interactive:
            raise UsageError("no password: pass --password-stdin and pipe it in")
        password = typer.prompt("Password", hide_input=True)
    result = do_login(settings, registry, username or "", password or "", insecure=insecure, ca_cert=ca_cert)
    note = "" if result.auth_required else " (the registry does not ask for credentials)"
    render.stderr.print(f"logged in to {result.registry} as {result.username}; credentials stored in "
                        f"{result.stored_in}{note}", markup=False)
