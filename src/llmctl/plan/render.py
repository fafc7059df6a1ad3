"""Render a plan in a file format and validate the result; nothing leaves here unvalidated.

The checks that need a program (`bash -n`, kubectl's decoder) are passed in by the caller as `TextCheck`s:
plan/ runs no process and reads no environment, so it can be imported and tested anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmctl.errors import PlanError
from llmctl.plan.k8s_walk import Report
from llmctl.plan.render_common import FILE_FORMATS, RenderedFile, RenderOptions
from llmctl.plan.render_compose import render_compose
from llmctl.plan.render_k8s import RENDERERS, render_k8s
from llmctl.plan.render_shell import render_shell
from llmctl.plan.types import Plan
from llmctl.plan.validate import validate_compose, validate_shell
from llmctl.plan.validate_k8s import K8S_IMAGE_VOLUME_VERSION, K8S_VERSION, validate_k8s


@dataclass(frozen=True)
class TextCheck:
    """A check of one rendered file by an outside program. `run` returns a problem, or None when the file passes;
    `formats` are the formats it applies to; `name` is what the report lists as checked."""

    name: str
    formats: tuple[str, ...]
    run: Callable[[RenderedFile], str | None]


def render(plan: Plan, fmt: str, opts: RenderOptions | None = None, *,
           checks: Sequence[TextCheck] = ()) -> tuple[list[RenderedFile], Report]:
    """(files, validation report) for `fmt` in FILE_FORMATS; PlanError if validation finds a problem."""
    opts = opts or RenderOptions()
    if fmt == "shell":
        files = render_shell(plan, opts)
        report = validate_shell(files)
    elif fmt == "compose":
        files = render_compose(plan, opts)
        report = validate_compose(files)
    elif fmt in RENDERERS:
        files, objs = render_k8s(plan, fmt, opts)
        report = validate_k8s(objs, min_version=k8s_version(opts))
    else:
        raise PlanError(f"unknown format {fmt!r}", hint=f"one of {', '.join(FILE_FORMATS)}")
    for check in checks:
        if fmt not in check.formats:
            continue
        found = [f"{f.path}: {p}" for f in files if (p := check.run(f))]
        report.problems += found
        if not found:
            report.checks.append(check.name)
    if report.problems:
        shown = "; ".join(report.problems[:5])
        more = f" (+{len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        raise PlanError(f"the rendered {fmt} output failed validation: {shown}{more}",
                        hint="this is an llmctl bug; please report it with the command line")
    return files, report


def k8s_version(opts: RenderOptions) -> str:
    """The Kubernetes version whose schemas the objects are checked against: the oldest that serves them."""
    if opts.weights is not None and opts.weights.kind == "oci" and opts.weights_mode == "image-volume":
        return K8S_IMAGE_VOLUME_VERSION
    return K8S_VERSION
