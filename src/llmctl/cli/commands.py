"""The command table: (name, function, hidden aliases) and sub-command groups.

Each command lives in its own module under llmctl.cli. Adding a command is one import and one row.
"""

from __future__ import annotations

from typing import Any, Callable

COMMANDS: list[tuple[str, Callable[..., Any], tuple[str, ...]]] = []
GROUPS: list[tuple[str, Any]] = []
