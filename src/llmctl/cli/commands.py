"""The command table: (name, function, hidden aliases) and sub-command groups.

Each command lives in its own module under llmctl.cli and keeps heavy imports inside its function, so
`llmctl --help` stays fast. Adding a command is one import and one row in its area's block.
"""

from __future__ import annotations

from typing import Any, Callable

COMMANDS: list[tuple[str, Callable[..., Any], tuple[str, ...]]] = []
GROUPS: list[tuple[str, Any]] = []

# -- models and the local store ---------------------------------------------------------------------
from llmctl.cli.create import create  # noqa: E402
from llmctl.cli.df import df  # noqa: E402
from llmctl.cli.export import export  # noqa: E402
from llmctl.cli.inspect import inspect  # noqa: E402
from llmctl.cli.list import list_  # noqa: E402
from llmctl.cli.package import package  # noqa: E402
from llmctl.cli.prune import prune  # noqa: E402
from llmctl.cli.rm import rm  # noqa: E402
from llmctl.cli.show import show  # noqa: E402
from llmctl.cli.tag import tag  # noqa: E402
from llmctl.cli.verify import verify  # noqa: E402

COMMANDS += [
    ("create", create, ()),
    ("package", package, ()),
    ("list", list_, ("ls",)),
    ("show", show, ()),
    ("inspect", inspect, ()),
    ("export", export, ()),
    ("tag", tag, ("cp",)),
    ("rm", rm, ("remove",)),
    ("df", df, ()),
    ("prune", prune, ()),
    ("verify", verify, ()),
]

# -- registries ------------------------------------------------------------------------------------
from llmctl.cli.login import login  # noqa: E402
from llmctl.cli.logout import logout  # noqa: E402
from llmctl.cli.pull import pull  # noqa: E402
from llmctl.cli.push import push  # noqa: E402

COMMANDS += [
    ("pull", pull, ()),
    ("push", push, ()),
    ("login", login, ()),
    ("logout", logout, ()),
]

# -- local runtime ---------------------------------------------------------------------------------
from llmctl.cli.load import load  # noqa: E402
from llmctl.cli.logs import logs  # noqa: E402
from llmctl.cli.ps import ps  # noqa: E402
from llmctl.cli.run import run  # noqa: E402
from llmctl.cli.runtime import runtime_app  # noqa: E402
from llmctl.cli.serve import serve  # noqa: E402
from llmctl.cli.status import status  # noqa: E402
from llmctl.cli.unload import unload  # noqa: E402

COMMANDS += [
    ("run", run, ()),
    ("serve", serve, ()),
    ("ps", ps, ()),
    ("load", load, ()),
    ("unload", unload, ("stop",)),
    ("status", status, ()),
    ("logs", logs, ()),
]
GROUPS += [("runtime", runtime_app)]

# -- launch plans ----------------------------------------------------------------------------------
from llmctl.cli.plan import plan  # noqa: E402

COMMANDS.append(("plan", plan, ()))
