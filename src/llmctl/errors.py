"""The one error hierarchy of llmctl.

Every failure a user can cause or meet is an `LlmctlError` subclass carrying its exit code. The CLI turns
them into a single line on stderr in one place (`llmctl.cli.app.main`); nothing else prints errors. Exit
codes are part of the interface for shell scripts and CI, and are documented in docs/exit-codes.md.
"""

from __future__ import annotations


class LlmctlError(Exception):
    """Base class: a message for the user, and the process exit code that goes with it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(LlmctlError):
    """Flags or arguments that make no sense together."""

    exit_code = 2


class NotFound(LlmctlError):
    """A model, file, blob or remote resource that does not exist."""

    exit_code = 3


class InvalidInput(LlmctlError):
    """Input that cannot be parsed or is not allowed: a reference, a file, a value."""

    exit_code = 4


class InvalidReference(InvalidInput):
    """A model name that does not follow the reference grammar."""


class InvalidModelfile(InvalidInput):
    """A Modelfile that does not parse; the message starts with `file:line:`."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.reason = message


class InvalidModel(InvalidInput):
    """A file that is not a usable model (not GGUF, truncated, wrong kind of layer)."""


class IntegrityError(LlmctlError):
    """Bytes whose digest or size is not what was promised: corruption, truncation, tampering."""

    exit_code = 5


class RegistryError(LlmctlError):
    """A registry that is unreachable, refuses or answers nonsense."""

    exit_code = 6


class AuthError(RegistryError):
    """Credentials missing or refused (401/403)."""

    exit_code = 7


class EngineError(LlmctlError):
    """The inference engine is missing, failed to build, failed to start or crashed."""

    exit_code = 8


class PlanError(LlmctlError):
    """A launch plan that cannot be made: the model does not fit, heads do not divide, SLO not met."""

    exit_code = 9


class Conflict(LlmctlError):
    """The store or a port is busy, or the thing already exists."""

    exit_code = 10


class Busy(Conflict):
    """The gateway is at a limit it was configured with (a model's queue, running jobs): retry later."""


class InsufficientSpace(LlmctlError):
    """Not enough free disk for what would be written (checked before writing, with a reserve kept free)."""

    exit_code = 12


class OfflineError(LlmctlError):
    """Something needs the network, which llmctl was told or found it cannot reach."""

    exit_code = 11


EXIT_INTERRUPTED = 130
