"""The `llmctl` entry point: builds the typer app and turns every error into one line and an exit code.

This is the only place errors become text. Before typer is even imported, two direct dispatchers look at
the arguments: `cli/fast.py` runs `--help`, `--version`, `list`, `show` and `ps` (what scripts call in
loops), `_fast_transfer` below runs `pull`/`push`; anything else builds the typer app (`typer_app()`; `app`
still names it), from the command table in `cli/commands.py`, with help drawn by `cli/typer_help.py`.
"""

from __future__ import annotations

import functools
import os
import sys

from llmctl import __version__
from llmctl.errors import EXIT_INTERRUPTED, LlmctlError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of a ~30 ms `--help`)
if TYPE_CHECKING:
    from typing import Any


@functools.cache
def typer_app() -> Any:
    """The typer app, built once per process: every command of `commands.COMMANDS` attached."""
    from typing import Optional

    import typer

    from llmctl.cli import commands, typer_help
    from llmctl.settings import Settings

    built = typer.Typer(
        name="llmctl",
        help=commands.ROOT_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # help is drawn by typer_help, errors by click: rich is never needed
        context_settings={"help_option_names": list(commands.HELP_OPTIONS)},
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"llmctl {__version__}")
            raise typer.Exit()

    def _root(
        ctx: typer.Context,
        version: Optional[bool] = typer.Option(
            None, "--version", "-v", callback=_version, is_eager=True, help=commands.VERSION_HELP
        ),
    ) -> None:
        ctx.obj = Settings.from_env()

    # typer reads the annotations; as strings they would be looked up in this module's globals
    _root.__annotations__ = {"ctx": typer.Context, "version": Optional[bool], "return": None}
    built.callback()(_root)

    for entry in commands.COMMANDS:
        target = entry.load()
        if entry.group:
            built.add_typer(target, name=entry.name)
            continue
        built.command(entry.name)(target)
        for alias in entry.aliases:
            built.command(alias, hidden=True)(target)
    typer_help.use_plain_help(built)
    return built


# `pull NAME` and `push NAME` are what users and scripts time (bench/transfer.py), and building the typer
# app costs them ~0.15 s before the first byte moves: click, every command module, and pydantic, which
# typer 0.29 uses to coerce each parameter. An invocation made only of the flags below runs the same
# command function directly (with -q, the api function: no progress or result line to draw, so no rich);
# anything else (help, unknown or malformed flags, `--`) goes through typer, so its parsing and messages
# stay typer's. tests/test_registry_cli.py checks that these flags are exactly the commands' flags.
FAST_COMMANDS = ("pull", "push")
FAST_FLAGS = {"-q": "quiet", "--quiet": "quiet", "--json": "json_", "--insecure": "insecure"}
FAST_VALUES = {"-j": "concurrency", "--concurrency": "concurrency", "--ca-cert": "ca_cert"}
FAST_OWN_VALUES = {"pull": {"--export": "export_dir"}, "push": {}}  # what only one of them takes
FAST_CONCURRENCY = range(1, 33)


def _fast_transfer(args: list[str]) -> int | None:
    """Run `pull`/`push` without typer when `args` are plain; None when typer must parse them."""
    parsed = _fast_transfer_args(args)
    if parsed is None:
        return None
    from types import SimpleNamespace

    from llmctl.settings import Settings

    name, kwargs = parsed
    settings = Settings.from_env()
    if kwargs["quiet"]:  # no progress, no result line: nothing for typer or rich to do
        _quiet_transfer(settings, args[0], name, kwargs)
        return 0
    if args[0] == "pull":
        from llmctl.cli.pull import pull as command
    else:
        from llmctl.cli.push import push as command
    command(SimpleNamespace(obj=settings), name, **kwargs)  # the commands read only ctx.obj
    return 0


def _fast_transfer_args(args: list[str]) -> tuple[str, dict[str, Any]] | None:
    """(NAME, the command's keyword arguments) when `args` are `pull`/`push` NAME and their own flags only."""
    if not args or args[0] not in FAST_COMMANDS:
        return None
    from pathlib import Path

    kwargs: dict[str, Any] = {"concurrency": 3, "insecure": False, "ca_cert": None, "quiet": False, "json_": False,
                              **{key: None for key in FAST_OWN_VALUES[args[0]].values()}}
    values = {**FAST_VALUES, **FAST_OWN_VALUES[args[0]]}
    names: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        if arg in FAST_FLAGS:
            kwargs[FAST_FLAGS[arg]] = True
        elif arg in values:
            value = next(rest, "")
            if not value or value.startswith("-"):
                return None
            if values[arg] == "concurrency":
                if not (value.isascii() and value.isdigit() and int(value) in FAST_CONCURRENCY):
                    return None
                kwargs["concurrency"] = int(value)
            else:
                kwargs[values[arg]] = Path(value)
        elif arg.startswith("-") or names or not arg:
            return None
        else:
            names.append(arg)
    return (names[0], kwargs) if len(names) == 1 else None


def _quiet_transfer(settings: Any, command: str, name: str, kwargs: dict[str, Any]) -> None:
    """`pull`/`push -q` through the api function alone; with --json, its result as render.print_json prints it."""
    import json

    options = {"quiet": True, "concurrency": kwargs["concurrency"], "insecure": kwargs["insecure"],
               "ca_cert": kwargs["ca_cert"]}
    if kwargs.get("export_dir") is not None:
        from llmctl.api.export import pull_and_export

        result: Any = pull_and_export(settings, name, kwargs["export_dir"], **options)
    elif command == "pull":
        from llmctl.api.pull import pull

        result = pull(settings, name, **options)
    else:
        from llmctl.api.push import push

        result = push(settings, name, **options)
    if kwargs["json_"]:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        sys.stdout.flush()


_Classes = tuple[type[BaseException], ...]


def _click_exceptions() -> tuple[_Classes, _Classes, _Classes]:
    """(aborts, errors, usage errors) of click and of the click typer >= 0.2x vendors, whichever were
    imported: a module never imported raised nothing. All are caught so usage errors never become
    tracebacks; errors are ClickException (a file click could not open: exit 1), usage errors its
    UsageError subclass (exit 2, as llmctl's own UsageError)."""
    aborts: list[type[BaseException]] = []
    errors: list[type[BaseException]] = []
    usage: list[type[BaseException]] = []
    for name in ("click.exceptions", "typer._click.exceptions"):
        module = sys.modules.get(name)
        for found, attribute in ((aborts, "Abort"), (errors, "ClickException"), (usage, "UsageError")):
            cls = getattr(module, attribute, None)
            if isinstance(cls, type):
                found.append(cls)
    typer = sys.modules.get("typer")
    if typer is not None and hasattr(typer, "Abort"):
        aborts.append(typer.Abort)
    return tuple(aborts), tuple(errors), tuple(usage)


_CONTROL = {c: "\N{REPLACEMENT CHARACTER}" for c in [*range(0x00, 0x20), *range(0x7f, 0xa0)]}


def usage_line(exc: BaseException, args: list[str]) -> str:
    """A click/typer usage error as one line: what is wrong, then where its help is.

    click prints the usage, a 'Try ... for help.' line and 'Error: ...' (and typer's choice lists span
    lines); llmctl's errors are one line, so scripts can show or match them. A missing parameter is named
    as the usage line names it (NAME, --model); text the user typed (an unknown option, an extra argument)
    cannot drive the terminal: control characters become U+FFFD.
    """
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    param = getattr(exc, "param", None)
    if param is not None and "MissingParameter" in kinds:
        if param.param_type_name == "argument":
            text = f"missing argument {param.metavar or param.name.upper()}"
        else:
            text = f"missing option {(param.opts or [param.name])[0]}"
    elif param is not None and "BadParameter" in kinds and param.param_type_name == "argument":
        text = f"invalid value for {param.metavar or param.name.upper()}: {exc.message}"  # type: ignore[attr-defined]
    elif "NoSuchOption" in kinds and getattr(exc, "possibilities", None):
        text = f"{exc.message}; did you mean {' or '.join(sorted(exc.possibilities))}?"  # type: ignore[attr-defined]
    else:
        text = exc.format_message()  # type: ignore[attr-defined]
    text = " ".join(text.split()).translate(_CONTROL).rstrip(".")
    if text[:1].isupper() and not text[1:2].isupper():  # "No such option" -> "no such option"; "GPU" stays
        text = text[0].lower() + text[1:]
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else _command_path(args) if "UsageError" in kinds else None
    return f"{text} (see '{path} --help')" if path else text


def _command_path(args: list[str]) -> str:
    """`llmctl runtime install` for args that start `runtime install ...`: where click raised an error
    without its context (an option missing its value), the help to point at is found from the words."""
    import typer

    command = typer.main.get_command(typer_app())
    path = ["llmctl"]
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        command = sub
        path.append(arg)
    return " ".join(path)


def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("LLMCTL_DEBUG", "") not in ("", "0", "false")
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        from llmctl.cli.fast import dispatch

        code = dispatch(args)
        if code is None:
            code = _fast_transfer(args)
            if code is not None and argv is None:
                # A finished pull/push has closed and synced everything; tearing the interpreter down (module by
                # module) would add 10-60 ms to a command users time against curl and skopeo.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        if code is None:
            code = typer_app()(args=args, prog_name="llmctl", standalone_mode=False)
    except LlmctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _fail(f"{exc.strerror or exc}{where}", 1)
    except Exception as exc:
        aborts, click_errors, usage_errors = _click_exceptions()
        if type(exc).__name__ == "NoArgsIsHelpError":  # `llmctl runtime`: its help, as `llmctl` alone prints
            sys.stdout.write(exc.ctx.get_help() + "\n")  # type: ignore[attr-defined]
            sys.exit(0)
        if isinstance(exc, aborts):
            _fail("interrupted", EXIT_INTERRUPTED)
        if isinstance(exc, click_errors):
            code = UsageError.exit_code if isinstance(exc, usage_errors) else 1
            _fail(usage_line(exc, args), code)
        if debug:  # the last net: never a traceback for users
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set LLMCTL_DEBUG=1 for a traceback)", 1)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into a return code
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"llmctl: error: {message}\n")
    sys.exit(code)


def __getattr__(name: str) -> Any:  # `from llmctl.cli.app import app` keeps working, built on first use
    if name == "app":
        return typer_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
