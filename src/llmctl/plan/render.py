"""Render a plan in a file format and validate the result; nothing leaves here unvalidated."""

from __future__ import annotations

from llmctl.errors import PlanError
from llmctl.plan.render_common import FILE_FORMATS, RenderedFile, RenderOptions
from llmctl.plan.types import Plan
from llmctl.plan.validate_k8s import Report


def render(plan: Plan, fmt: str, opts: RenderOptions | None = None, *, use_kubectl: bool = True) -> tuple[list[RenderedFile], Report]:
    """(files, validation report) for `fmt` in FILE_FORMATS; PlanError if validation finds a problem."""
    from llmctl.plan.validate import validate_rendered
    from llmctl.plan.validate_k8s import validate_k8s

    opts = opts or RenderOptions()
    objs = None
    if fmt == "shell":
        from llmctl.plan.render_shell import render_shell

        files = render_shell(plan, opts)
    elif fmt == "compose":
        from llmctl.plan.render_compose import render_compose

        files = render_compose(plan, opts)
    elif fmt in ("lws", "disaggregatedset", "rbg"):
        from llmctl.plan.render_k8s import render_k8s

        files, objs = render_k8s(plan, fmt, opts)
    else:
        raise PlanError(f"unknown format {fmt!r}", hint=f"one of {', '.join(FILE_FORMATS)}")
    if objs is not None:
        report = validate_k8s(objs, files[0].content, use_kubectl=use_kubectl)
    else:
        report = validate_rendered(fmt, files)
    if report.problems:
        shown = "; ".join(report.problems[:5])
        more = f" (+{len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        raise PlanError(f"the rendered {fmt} output failed validation: {shown}{more}",
                        hint="this is an llmctl bug; please report it with the command line")
    return files, report
