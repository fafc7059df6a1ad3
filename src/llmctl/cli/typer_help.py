"""typer's commands and groups with help drawn by `cli/helptext.py` instead of typer's rich panels.

typer 0.29 labels types as `<bool>`, `<str>`, `<int>`, reads help strings as rich markup (so
"GPUs per node [default: 8]." lost its bracket and printed "GPUs per node ."), puts `{name}` in usage
lines, and needs rich (~60 ms) to draw any of it. These classes give every command the layout typer
users know: TEXT/INTEGER/PATH metavars, nothing for a flag, NAME in the usage line, help text as written.
"""

from __future__ import annotations

import enum
from pathlib import PurePath
from typing import Any, get_args, get_origin

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from llmctl.cli import helptext

TYPE_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def metavar(param: Any) -> str:
    """What a parameter's value looks like in help: its metavar, else the classic click type name."""
    if param.metavar is not None:
        return str(param.metavar)
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        return ""
    descriptor = param.type_descriptor
    if descriptor.is_choice:
        choices = [c.value if isinstance(c, enum.Enum) else c for c in descriptor.choices or ()]
        return "[" + "|".join(str(c) for c in choices) + "]"
    annotation = descriptor.annotation
    if get_origin(annotation) in (list, tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        annotation = args[0] if args else str
    if isinstance(annotation, type) and issubclass(annotation, PurePath) or descriptor.is_path:
        return "PATH"
    name = TYPE_NAMES.get(annotation) or getattr(annotation, "__name__", "TEXT").upper()
    return name


def number_range(param: Any) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{low}<=x<={high}"
    if low is not None:
        return f"x>={low}"
    if high is not None:
        return f"x<={high}"
    return ""


def default_text(param: Any) -> str:
    """The `[default: ...]` value, shown as typer shows it: never for flags, None or empty lists."""
    show = getattr(param, "show_default", False)
    if isinstance(show, str):
        return f"({show})"
    if not show or (isinstance(param, TyperOption) and (param.is_flag or param.count)):
        return ""
    value = param.default
    if callable(value):
        return "(dynamic)"
    if value is None or value == [] or value == ():
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v.value if isinstance(v, enum.Enum) else v) for v in value)
    return str(value.value if isinstance(value, enum.Enum) else value)


def param_text(param: Any) -> str:
    parts = [" ".join((param.help or "").split())]
    bounds = number_range(param)
    if bounds:
        parts.append(f"[{bounds}]")
    envvar = param.envvar if getattr(param, "show_envvar", False) else None
    if envvar:
        parts.append(f"[env var: {envvar if isinstance(envvar, str) else ', '.join(envvar)}]")
    default = default_text(param)
    if default:
        parts.append(f"[default: {default}]")
    if param.required:
        parts.append("[required]")
    return " ".join(p for p in parts if p)


def argument_name(param: TyperArgument) -> str:
    name = param.metavar or (param.name or "").upper()
    return name + ("..." if param.nargs != 1 else "")


def param_row(param: Any) -> helptext.Row:
    required = "*" if param.required else ""
    if isinstance(param, TyperArgument):
        return helptext.Row((required, argument_name(param), metavar(param)), param_text(param))
    longs = [o for o in param.opts if o.startswith("--")] + [o for o in param.secondary_opts if o.startswith("--")]
    shorts = [o for o in param.opts + param.secondary_opts if not o.startswith("--")]
    return helptext.Row((required, ",".join(longs), ",".join(shorts), metavar(param)), param_text(param))


def page(command: Any, ctx: Any) -> helptext.Page:
    """A command's or group's help page, from the same click objects typer parses with."""
    panels: dict[str, list[helptext.Row]] = {"Arguments": [], "Options": []}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        default_panel = "Arguments" if isinstance(param, TyperArgument) else "Options"
        panels.setdefault(getattr(param, "rich_help_panel", None) or default_panel, []).append(param_row(param))
    if isinstance(command, TyperGroup):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                title = getattr(sub, "rich_help_panel", None) or "Commands"
                text = helptext.summary(sub.short_help or sub.help or "")
                panels.setdefault(title, []).append(helptext.Row((name,), text))
    usage = f"{ctx.command_path} {' '.join(command.collect_usage_pieces(ctx))}".rstrip()
    return helptext.Page(usage, command.help or "", tuple(helptext.Panel(t, tuple(r)) for t, r in panels.items()))


class _PlainHelp:
    """format_help and the usage line for both kinds of click command."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write(helptext.page_text(page(self, ctx)))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []  # type: ignore[attr-defined]
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if isinstance(param, TyperArgument):
                pieces.append(argument_name(param) if param.required else f"[{argument_name(param)}]")
        if isinstance(self, TyperGroup):
            pieces.append(self.subcommand_metavar)
        return pieces


class Command(_PlainHelp, TyperCommand):
    pass


class Group(_PlainHelp, TyperGroup):
    pass


def use_plain_help(app: Any) -> None:
    """Give every command and sub-group of a typer app (not yet turned into click) the plain help classes."""
    if not app.info.cls or app.info.cls is TyperGroup:  # None, typer's "not given" placeholder, or its default
        app.info.cls = Group
    for info in app.registered_commands:
        if not info.cls or info.cls is TyperCommand:
            info.cls = Command
    for group in app.registered_groups:
        if not group.cls or group.cls is TyperGroup:
            group.cls = Group
        use_plain_help(group.typer_instance)
