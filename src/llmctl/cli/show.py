"""`llmctl show NAME`."""

from __future__ import annotations

import typer

from llmctl.cli import render


def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    modelfile: bool = typer.Option(False, "--modelfile", help="Print a Modelfile that re-creates the model."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
    license: bool = typer.Option(False, "--license", help="Print the license text."),
) -> None:
    """Show a model's architecture, parameters, quantization, context, system prompt, parameters, license.

    Examples:

      llmctl show gemma3:270m

      llmctl show gemma3:270m --modelfile > Modelfile
    """
    from llmctl.api import manage

    settings = ctx.obj
    model = manage.show(settings, name)
    if modelfile:
        render.stdout.out(manage.modelfile_text(settings, model), end="")
        return
    if json_:
        render.print_json(manage.show_json(settings, model))
        return
    if license:
        render.stdout.out("\n\n".join(model.licenses))
        return
    data = manage.show_json(settings, model)
    section = render.stdout.print
    section("  [bold]Model[/bold]")
    for label, key in (("architecture", "architecture"), ("parameters", "parameters"),
                       ("quantization", "quantization"), ("context length", "context_length"), ("format", "format")):
        if data[key] is not None:
            section(f"    {label:<16}{data[key]}")
    section(f"    {'size':<16}{render.human_size(data['size'])}")
    section(f"    {'id':<16}{data['id']}")
    if model.adapters:
        section(f"    {'adapters':<16}{len(model.adapters)}")
    if model.parameters:
        section("\n  [bold]Parameters[/bold]")
        for k, v in sorted(model.parameters.items()):
            for item in v if isinstance(v, list) else [v]:
                section(f"    {k:<16}{item!r}" if isinstance(item, str) else f"    {k:<16}{item}", markup=False)
    if model.system:
        section("\n  [bold]System[/bold]")
        section("    " + model.system.strip().replace("\n", "\n    "), markup=False)
    if model.messages:
        section("\n  [bold]Messages[/bold]")
        for m in model.messages:
            section(f"    {m.role:<10}{m.content.strip()[:70]}", markup=False)
    if model.licenses:
        section("\n  [bold]License[/bold]")
        for text in model.licenses:
            first = text.strip().splitlines()[0] if text.strip() else ""
            section(f"    {first[:76]}", markup=False)
