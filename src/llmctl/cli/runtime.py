"""`llmctl runtime install|list`: the llama-server engines llmctl can run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from llmctl.cli import render

runtime_app = typer.Typer(
    name="runtime",
    help="Build and list llama-server engines (the inference runtime).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@runtime_app.command("install")
def install(
    ctx: typer.Context,
    cuda: bool = typer.Option(False, "--cuda", help="Build with CUDA (needs nvcc; for NVIDIA GPUs)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if this build is already installed."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel compile jobs (default: all cores)."),
    source: Optional[Path] = typer.Option(None, "--source", help="A llama-cpp-python sdist or source tree, or a "
                                                                  "llama.cpp tree, instead of `pip download`."),
    cuda_archs: Optional[str] = typer.Option(None, "--cuda-archs", help="CMAKE_CUDA_ARCHITECTURES, e.g. 90 "
                                                                         "(default: each GPU's compute_cap from "
                                                                         "nvidia-smi, e.g. 90 on an H100)."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Build llama-server from the llama.cpp that the pinned llama-cpp-python vendors.

    It goes to $LLMCTL_HOME/runtimes/<version>-<cpu|cuda>/, built for this machine with AMX instructions
    disabled (the fix for engines that die of SIGILL), and is then preferred over the llama-cpp-python
    wheel's llama-server. The sdist comes from pip (its cache after the first time); the build log is in
    $LLMCTL_HOME/logs/.

    Examples:

      llmctl runtime install

      llmctl runtime install --cuda
    """
    from llmctl.runtime.build import install as build

    settings = ctx.obj
    with render.CliProgress(quiet=quiet) as progress:
        result = build(settings, cuda=cuda, force=force, jobs=jobs, source=source, cuda_archs=cuda_archs,
                       progress=progress)
    if json_:
        render.print_json({"path": str(result.path), "version": result.version, "kind": result.kind,
                           "seconds": round(result.seconds, 1), "log": str(result.log_path),
                           "reused": result.reused})
        return
    if result.reused:
        render.stderr.print(f"llama-server {result.version}-{result.kind} is already installed: {result.path} "
                            f"(--force rebuilds)", markup=False)
    else:
        render.stderr.print(f"installed llama-server {result.version}-{result.kind} in {result.seconds:.0f}s: "
                            f"{result.path} (log: {result.log_path})", markup=False)


@runtime_app.command("list")
def list_(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the llama-server engines llmctl can use, in the order it looks for them.

    The first usable one runs models: LLMCTL_LLAMA_SERVER, then `llmctl runtime install` builds (CUDA first
    when a GPU is present), then the llama-cpp-python wheel's llama-server, then llama-server on PATH.
    """
    report = _EngineReport.of(ctx.obj)
    if json_:
        render.print_json(report.to_json())
    else:
        _print_report(report)


@dataclass(frozen=True)
class _EngineReport:
    """What `runtime list` shows: the engines in search order, the one chosen (or why none), the machine."""

    engines: list[Any]
    chosen: Any
    problem: str | None
    machine: dict[str, Any]
    builds: dict[str, Any]
    gpus: list[Any]
    cuda_home: Path | None

    @classmethod
    def of(cls, settings: Any) -> "_EngineReport":
        from llmctl.errors import EngineError
        from llmctl.runtime import cpu, gpu
        from llmctl.runtime.build import installed
        from llmctl.runtime.engine import find_engine, list_engines

        engines = list_engines(settings)
        try:
            chosen, problem = find_engine(settings), None
        except EngineError as exc:
            chosen, problem = None, str(exc)
        machine = cpu.describe(settings.cuda_home)
        builds = {b["path"]: b for b in installed(settings)}
        return cls(engines, chosen, problem, machine, builds, gpu.query_gpus(), settings.cuda_home)

    def selected(self, engine: Any) -> bool:
        return self.chosen is not None and engine.path == self.chosen.path

    def to_json(self) -> dict[str, Any]:
        return {
            "engines": [{**e.to_json(), "selected": self.selected(e), "build": self.builds.get(str(e.path))}
                        for e in self.engines],
            "selected": self.chosen.to_json() if self.chosen else None,
            "error": self.problem,
            "machine": self.machine,
            "gpu_devices": [g.to_json() for g in self.gpus],
        }


def _print_report(report: _EngineReport) -> None:
    from rich.table import Table

    from llmctl.runtime import gpu

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("", "SOURCE", "KIND", "VERSION", "PATH"):
        table.add_column(col)
    for e in report.engines:
        table.add_row("*" if report.selected(e) else "", e.source, e.kind, e.version, str(e.path))
    if report.engines:
        render.stdout.print(table)
    else:
        render.stdout.print("no llama-server found; run `llmctl runtime install`", markup=False)
    if report.problem and report.engines:
        render.stderr.print(f"llmctl: {report.problem}", markup=False)
    if report.chosen is not None:
        from llmctl.runtime.engine import processor_note

        note = processor_note(report.chosen, cuda_home=report.cuda_home, verbose=True)
        if note:
            render.stdout.print(note, markup=False)
    machine = report.machine
    gpus = (", ".join(f"{g.index}: {g.name} ({gpu.gib(g.free)} free of {gpu.gib(g.total)}, compute {g.compute_cap})"
                      for g in report.gpus) or "none")
    amx = " (AMX advertised: builds here disable it)" if machine["amx_advertised"] else ""
    render.stdout.print(
        f"\nmachine: {machine['cpu']}, {machine['cores']} cores, {' '.join(machine['simd'])}{amx}\n"
        f"GPUs: {gpus}; nvcc: {machine['nvcc'] or 'not found'}"
        + (f" (CUDA {machine['cuda']})" if machine["cuda"] else ""),
        markup=False,
    )
