"""`llmctl push NAME`: a stored model to its registry."""

from __future__ import annotations

import typer

from llmctl.cli import render
from llmctl.cli.options import CaCert, Concurrency, Insecure, Json, Quiet


def push(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Stored model; its name says where it goes (registry/namespace/name:tag)."),
    concurrency: Concurrency = 3,
    insecure: Insecure = False,
    ca_cert: CaCert = None,
    quiet: Quiet = False,
    json_: Json = False,
) -> None:
    """Push a model to an OCI registry. Blobs the registry already has are not sent again.

    Examples:

      llmctl tag mymodel registry.example.com/team/mymodel:v1 && llmctl push registry.example.com/team/mymodel:v1

      LLMCTL_REGISTRY=localhost:5000/team llmctl push mymodel
    """
    from llmctl.api.push import push as push_model

    settings = ctx.obj
    with render.CliProgress(quiet=quiet or json_) as progress:
        result = push_model(settings, name, progress=progress, concurrency=concurrency, insecure=insecure,
                            ca_cert=ca_cert)
    if json_:
        render.print_json(result.to_json())
    elif not quiet:
        print_pushed(result)


def print_pushed(result) -> None:  # type: ignore[no-untyped-def]
    parts = [f"{render.human_size(result.uploaded)} uploaded",
             *render.sizes((result.skipped, "already there"), (result.mounted, "mounted"))]
    render.stderr.print(f"pushed {result.name} ({result.digest[7:19]}, {render.human_size(result.total)}; "
                        f"{', '.join(parts)}) in {result.seconds:.1f}s", markup=False)
