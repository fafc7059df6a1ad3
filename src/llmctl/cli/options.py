"""Options several commands share, declared once so their flags and help read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Concurrency = Annotated[int, typer.Option("--concurrency", "-j", min=1, max=32, help="Blobs transferred in parallel.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP and unverified TLS for this registry.")]
CaCert = Annotated[Optional[Path], typer.Option("--ca-cert", help="Extra CA certificate (PEM) to trust.")]
