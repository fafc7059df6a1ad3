"""The `llmctl` entry point: builds the typer app and turns every error into one line and an exit code.

This is the only place errors become text. Command modules stay light at import time (typer and rich
only) so `llmctl --help` is fast; they import heavy modules inside their function bodies.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import click
import typer

try:  # typer >= 0.2x vendors its own click; catch both so usage errors never become tracebacks
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions

CLICK_ERRORS = (click.exceptions.ClickException, _typer_click.ClickException)
ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)

from llmctl import __version__
from llmctl.errors import EXIT_INTERRUPTED, LlmctlError
from llmctl.settings import Settings

HELP = """Local LLMs from a GGUF file, Hugging Face or any OCI registry to a running llama.cpp server;
multi-node vLLM/SGLang launch plans.

Examples:

  llmctl run gemma3:270m "Why is the sky blue?"

  llmctl create mymodel -f Modelfile

  llmctl list --json
"""

app = typer.Typer(
    name="llmctl",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Optional[bool] = typer.Option(
        None, "--version", "-v", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    ctx.obj = Settings.from_env()


def _register() -> None:
    """Attach one function per command module. The table is the CLI's table of contents."""
    from llmctl.cli import commands

    for name, func, aliases in commands.COMMANDS:
        app.command(name)(func)
        for alias in aliases:
            app.command(alias, hidden=True)(func)
    for name, sub in commands.GROUPS:
        app.add_typer(sub, name=name)


_register()


def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("LLMCTL_DEBUG", "") not in ("", "0", "false")
    try:
        code = app(args=argv, prog_name="llmctl", standalone_mode=False)
    except LlmctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _fail(str(exc), exc.exit_code)
    except ABORTS:
        _fail("interrupted", EXIT_INTERRUPTED)
    except CLICK_ERRORS as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _fail(f"{exc.strerror or exc}{where}", 1)
    except Exception as exc:  # the last net: never a traceback for users
        if debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set LLMCTL_DEBUG=1 for a traceback)", 1)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into a return code
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"llmctl: error: {message}\n")
    sys.exit(code)
