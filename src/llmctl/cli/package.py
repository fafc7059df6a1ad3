"""`llmctl package (--gguf FILE | --safetensors-dir DIR) NAME`: Docker Model Runner's packaging command."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from llmctl.cli import render


def package(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name to store the model under (and to push to, with --push)."),
    gguf: Optional[Path] = typer.Option(None, "--gguf", help="GGUF weights; any shard of a split model brings all shards."),
    safetensors_dir: Optional[Path] = typer.Option(
        None, "--safetensors-dir", help="Hugging Face model folder: *.safetensors, config.json, tokenizer files."),
    license: List[Path] = typer.Option([], "--license", "-l", help="License file (repeatable)."),
    chat_template: Optional[Path] = typer.Option(None, "--chat-template", help="Jinja chat template file."),
    lora: List[Path] = typer.Option([], "--lora", help="GGUF LoRA adapter (repeatable)."),
    mmproj: Optional[Path] = typer.Option(None, "--mmproj", help="GGUF multimodal projector."),
    context_size: Optional[int] = typer.Option(None, "--context-size", help="Default context size to record."),
    push: bool = typer.Option(False, "--push", help="Push the model to its registry once packaged."),
    insecure: bool = typer.Option(False, "--insecure", help="With --push: allow plain HTTP and unverified TLS."),
    ca_cert: Optional[Path] = typer.Option(None, "--ca-cert", help="With --push: extra CA certificate (PEM)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Package GGUF weights, or a safetensors model folder, and their companions into a model artifact.

    Examples:

      llmctl package --gguf ./model.gguf --license ./LICENSE myorg/mymodel:q4

      llmctl package --gguf ./model-00001-of-00003.gguf big:latest

      llmctl package --safetensors-dir ./Qwen3-0.6B myorg/qwen3:0.6b

      llmctl package --gguf ./model.gguf --push registry.example.com/team/model:q4
    """
    from llmctl.api.models import short
    from llmctl.api.package import PackageSpec, package as package_model

    settings = ctx.obj
    spec = PackageSpec(
        gguf=gguf, licenses=tuple(license), chat_template=chat_template, lora=tuple(lora), mmproj=mmproj,
        context_size=context_size, safetensors_dir=safetensors_dir,
    )
    with render.CliProgress(quiet=quiet) as progress:
        result = package_model(settings, name, spec, progress)
    if not quiet:
        if result.skipped:
            render.stderr.print(f"not part of the model, left out: {', '.join(result.skipped)}", markup=False)
        render.stderr.print(f"packaged {short(settings, result.reference)} ({result.digest[7:19]}, {render.human_size(result.size)})")
    if push:
        from llmctl.api.push import push as push_model
        from llmctl.cli.push import print_pushed

        with render.CliProgress(quiet=quiet) as progress:
            pushed = push_model(settings, str(result.reference), progress=progress, insecure=insecure, ca_cert=ca_cert)
        if not quiet:
            print_pushed(pushed)
