"""Options several commands share, declared once so their flags and help read the same everywhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from llmctl.settings import Settings

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Concurrency = Annotated[int, typer.Option("--concurrency", "-j", min=1, max=32, help="Blobs transferred in parallel.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP and unverified TLS for this registry.")]
CaCert = Annotated[Optional[Path], typer.Option("--ca-cert", help="Extra CA certificate (PEM) to trust.")]



def folder(value: str) -> Path:
    """A folder argument's parser: typer reads "" as Path(""), the current directory, so `export NAME ""`
    (an unset shell variable) would lay the model out in the working directory; an empty value is refused."""
    if not value:
        raise typer.BadParameter("an empty path names no folder (pass . for the current one)")
    return Path(value)


# GPUs for the engines a command starts (`run`, `serve`); LLMCTL_GPUS/_SPLIT_MODE/_TENSOR_SPLIT give defaults
Gpus = Annotated[Optional[str], typer.Option(
    "--gpus", help="GPUs the engines may use: all (default), none, or indexes/UUIDs like 0,1 (sets "
                   "CUDA_VISIBLE_DEVICES for CUDA engines; default: LLMCTL_GPUS).")]
SplitMode = Annotated[Optional[str], typer.Option(
    "--split-mode", help="How a model spans several GPUs: layer (default), tensor, row or none.")]
TensorSplit = Annotated[Optional[str], typer.Option(
    "--tensor-split", metavar="3,1", help="Several GPUs: share of the model per GPU, e.g. 3,1.")]


def with_gpus(settings: Settings, gpus: str | None, split_mode: str | None, tensor_split: str | None) -> Settings:
    """`settings` with the GPU flags given on the command line, checked here so a bad value is one line.

    A flag replaces its LLMCTL_* variable; the merged values are checked (the variables too), before any
    model loads, and reach every engine the command starts through Settings.
    """
    from llmctl.runtime import gpu

    merged = replace(settings, gpus=settings.gpus if gpus is None else gpus,
                     split_mode=settings.split_mode if split_mode is None else split_mode,
                     tensor_split=settings.tensor_split if tensor_split is None else tensor_split)
    gpu.check_choice(merged.gpus, merged.split_mode, merged.tensor_split)
    return merged
