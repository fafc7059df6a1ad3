"""The command table: (name, function, hidden aliases) and sub-command groups.

Each command lives in its own module under llmctl.cli and keeps heavy imports inside its function, so
`llmctl --help` stays fast. Adding a command is one import and one row in its area's block.
"""

from __future__ import annotations

from typing import Any, Callable

COMMANDS: list[tuple[str, Callable[..., Any], tuple[str, ...]]] = []
GROUPS: list[tuple[str, Any]] = []

# -- models and the local store ---------------------------------------------------------------------

# -- registries ------------------------------------------------------------------------------------

# -- local runtime ---------------------------------------------------------------------------------

# -- launch plans ----------------------------------------------------------------------------------
