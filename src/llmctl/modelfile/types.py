"""The parsed Modelfile: Ollama's flat list of commands, plus typed views that the rest of llmctl reads.

The list of commands is the truth, in file order, exactly as Ollama's `parser.Modelfile` holds it; the views
(`system`, `parameters`, ...) are computed from it on every access so they can never drift from it, and so
`format_modelfile` can reproduce the file's instructions in their original order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from llmctl.modelfile.params import DEPRECATED_PARAMETERS, coerce_parameter


@dataclass(frozen=True)
class Command:
    """One instruction, as Ollama's `parser.Command`, plus the 1-based line where it starts.

    `name` is "model" for FROM; "adapter", "license", "template", "system", "message" for those; and for
    PARAMETER the (lower-cased) parameter name itself, e.g. "temperature" or "stop". `args` is the value
    with quotes removed; for MESSAGE it is "role: content", as in Ollama.
    """

    name: str
    args: str
    # Where it came from, not what it says: two commands with the same name and args are equal wherever they
    # stand, so a file and its re-formatted copy compare equal command by command.
    line: int = field(default=0, compare=False)

    # Names that are instructions rather than parameters.
    INSTRUCTION_NAMES: ClassVar[frozenset[str]] = frozenset(
        {"model", "adapter", "license", "template", "system", "message"}
    )

    @property
    def is_parameter(self) -> bool:
        return self.name not in self.INSTRUCTION_NAMES


@dataclass(frozen=True)
class Message:
    """A MESSAGE line: one turn of the conversation the model starts from."""

    role: str
    content: str


@dataclass
class Modelfile:
    """A parsed Modelfile. Build it with `parse()`, which guarantees at least one FROM and valid parameters."""

    commands: list[Command] = field(default_factory=list)
    path: str | None = None

    def froms(self) -> list[str]:
        """Every FROM value in order: several FROM files are the shards of one model."""
        return [c.args for c in self.commands if c.name == "model"]

    def _last(self, name: str) -> str | None:
        value = None
        for c in self.commands:
            if c.name == name:
                value = c.args
        return value

    @property
    def system(self) -> str | None:
        """The last SYSTEM, as in Ollama (each one overwrites the request's System)."""
        return self._last("system")

    @property
    def template(self) -> str | None:
        """The last TEMPLATE."""
        return self._last("template")

    @property
    def adapters(self) -> list[str]:
        return [c.args for c in self.commands if c.name == "adapter"]

    @property
    def licenses(self) -> list[str]:
        """Every LICENSE, in order: a model can carry several."""
        return [c.args for c in self.commands if c.name == "license"]

    @property
    def messages(self) -> list[Message]:
        out = []
        for c in self.commands:
            if c.name == "message":
                role, _, content = c.args.partition(": ")  # Go: strings.Cut(args, ": ")
                out.append(Message(role, content))
        return out

    @property
    def parameters(self) -> dict[str, object]:
        """PARAMETERs with typed values, merged as Ollama's CreateRequest does.

        List parameters (`stop`) collect every line in order; for scalars the last line wins. Deprecated
        parameters are left out, as Ollama drops them. Raises `InvalidInput` only for a Modelfile built by
        hand with a bad parameter: `parse()` has already checked every one.
        """
        out: dict[str, object] = {}
        for c in self.commands:
            if not c.is_parameter or c.name in DEPRECATED_PARAMETERS:
                continue
            value = coerce_parameter(c.name, c.args)
            if isinstance(value, list) and isinstance(out.get(c.name), list):
                out[c.name] = [*out[c.name], *value]  # type: ignore[misc]
            else:
                out[c.name] = value
        return out

    def command_for(self, name: str) -> Command | None:
        """The first command called `name` ("model" for FROM), to point an error at its line."""
        return next((c for c in self.commands if c.name == name), None)
