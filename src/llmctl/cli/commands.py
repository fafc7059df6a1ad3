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
    ("tag", tag, ("cp",)),
    ("rm", rm, ("remove",)),
    ("df", df, ()),
    ("prune", prune, ()),
    ("verify", verify, ()),
]

# -- registries ------------------------------------------------------------------------------------

# -- local runtime ---------------------------------------------------------------------------------

# -- launch plans ----------------------------------------------------------------------------------
