"""The fast dispatcher: `--help`, `--version`, `list`, `show` and `ps` without typer, pydantic or rich.

Scripts call these in loops, and building the typer app costs ~0.3 s before a command runs (typer and
the click it vendors, pydantic for every parameter, every command module, rich for help). An invocation
made only of the flags below runs the same code the typer command runs (`cli/views.py`), or prints the
root help from the command table (`cli/commands.py`) through the same renderer typer's help uses
(`cli/helptext.py`). Anything else (a command's own --help, an unknown or malformed flag, `--opt=value`,
`--`, a missing argument) returns None and goes through typer, so its parsing and messages stay typer's.
tests/test_cli_fast.py checks that these flags are exactly the commands' flags and that both doors print
the same bytes.
"""

from __future__ import annotations

import sys
from collections import namedtuple

from llmctl import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, Callable

ROOT_USAGE = "llmctl [OPTIONS] COMMAND [ARGS]..."

# A command the dispatcher runs itself: flags ("--json" -> keyword), options that take a value
# ("--api-key" -> keyword), and the keywords of its positional arguments, all required.
Hot = namedtuple("Hot", "flags values arguments", defaults=({}, ()))


HOT: dict[str, Hot] = {
    "list": Hot({"--json": "json_", "--quiet": "quiet", "-q": "quiet"}),
    "show": Hot({"--modelfile": "modelfile", "--json": "json_", "--license": "license"}, arguments=("name",)),
    "ps": Hot({"--json": "json_"}, {"--api-key": "api_key"}),
}
ALIASES = {"ls": "list"}


def parse(hot: Hot, args: list[str]) -> dict[str, Any] | None:
    """Keyword arguments for the command, or None when typer must parse `args`."""
    kwargs: dict[str, Any] = {keyword: False for keyword in hot.flags.values()}
    kwargs.update({keyword: None for keyword in hot.values.values()})
    positional: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg in hot.flags:
            kwargs[hot.flags[arg]] = True
        elif arg in hot.values:
            value = next(rest, None)
            if not value or value.startswith("-"):
                return None
            kwargs[hot.values[arg]] = value
        elif arg.startswith("-") or not arg:
            return None
        else:
            positional.append(arg)
    if len(positional) != len(hot.arguments):
        return None
    kwargs.update(zip(hot.arguments, positional))
    return kwargs


def root_page() -> Any:
    """`llmctl --help` from the command table; typer's groups come after its commands, as typer lists them."""
    from llmctl.cli import commands, helptext

    options = (helptext.Row(("", "--version", "-v", ""), commands.VERSION_HELP),
               helptext.Row(("", "--help", "-h", ""), commands.HELP_HELP))
    ordered = [c for c in commands.COMMANDS if not c.group] + [c for c in commands.COMMANDS if c.group]
    listed = tuple(helptext.Row((c.name,), c.summary) for c in ordered)
    return helptext.Page(ROOT_USAGE, commands.ROOT_HELP,
                         (helptext.Panel("Options", options), helptext.Panel("Commands", listed)))


def dispatch(args: list[str]) -> int | None:
    """Run `args` here and return the exit code, or None when the typer app must run them."""
    if not args or args in (["--help"], ["-h"]):
        from llmctl.cli import helptext

        sys.stdout.write(helptext.page_text(root_page()))
        return 0
    if args in (["--version"], ["-v"]):
        sys.stdout.write(f"llmctl {__version__}\n")
        return 0
    name = ALIASES.get(args[0], args[0])
    hot = HOT.get(name)
    kwargs = parse(hot, args[1:]) if hot is not None else None
    if kwargs is None:
        return None
    from llmctl.settings import Settings

    settings = Settings.from_env()
    runners: dict[str, Callable[..., None]] = _runners()
    if name == "ps" and kwargs["api_key"] is None:
        kwargs["api_key"] = settings.api_key  # the option's envvar, LLMCTL_API_KEY, as typer reads it
    runners[name](settings, **kwargs)
    return 0


def _runners() -> dict[str, Callable[..., None]]:
    from llmctl.cli import views

    return {"list": views.list_models, "show": views.show_model, "ps": views.loaded_models}
