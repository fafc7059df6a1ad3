"""Commands -> Modelfile text, as Ollama's `Modelfile.String()` / `Command.String()` write it.

Ollama writes each command on its own line and quotes a value only when it must (its `quote()`): a value with
a line break or a leading/trailing space goes in `\"\"\"...\"\"\"` if it contains `"`, else in `"..."`; FROM is
never quoted. We produce exactly that text whenever it reads back as the same value, which is nearly always.

Where Ollama's choice would not read back (its formatter has no escapes to fall back on), we pick the other
quoting that does, so that `parse(format_modelfile(mf))` always gives back `mf`'s commands:

- a value starting with `"` (Ollama leaves `"hi"` bare, which reads back as `hi`), or with `""` (which
  needs the `\"\"\"` form even without a line break);
- a leading/trailing tab or a lone CR (trimmed, or taken as a line break, when bare);
- a FROM with leading/trailing blanks (Ollama writes it bare; `FROM "  x"` is what reads back).

A value that no quoting can carry raises `InvalidInput` rather than producing a file that silently means
something else. There are exactly two such cases: a character the parser drops (a control character, NBSP,
a zero-width space...), and `\"\"\"` right before a line break (blanks between allowed), which closes a
`\"\"\"` string there and, since it also ends in `"`, a `"` string too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from llmctl.errors import InvalidInput, InvalidModelfile
from llmctl.modelfile.params import format_parameter_value
from llmctl.modelfile.parser import ERR_INVALID_ROLE, MESSAGE_ROLES, parse_commands
from llmctl.modelfile.types import Command, Message, Modelfile

_KEYWORDS = {"license": "LICENSE", "template": "TEMPLATE", "system": "SYSTEM", "adapter": "ADAPTER"}
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9_]+\Z")


def ollama_quote(s: str) -> str:
    """parser.go `quote()`, verbatim: quote only for a line break or a leading/trailing space."""
    if "\n" in s or s.startswith(" ") or s.endswith(" "):
        if '"' in s:
            return '"""' + s + '"""'
        return '"' + s + '"'
    return s


def _reads_back(written: str, value: str) -> bool:
    """Whether `written`, placed after an instruction, parses back as exactly `value` and nothing else."""
    try:
        commands = parse_commands(f"FROM {written}\n")
    except InvalidModelfile:
        return False
    return len(commands) == 1 and commands[0].args == value


def quote_value(value: str, *, what: str = "value", bare_first: bool = False) -> str:
    """The text to write after an instruction so that it reads back as `value`: Ollama's choice if it works.

    `bare_first` is for FROM, which Ollama never quotes. Raises `InvalidInput` when nothing works.
    """
    first = value if bare_first else ollama_quote(value)
    for written in (first, '"' + value + '"', '"""' + value + '"""'):
        if _reads_back(written, value):
            return written
    dropped = sorted({c for c in value if not c.isprintable() and c not in "\t\r\n"})
    if dropped:
        codes = ", ".join(f"U+{ord(c):04X}" for c in dropped)
        raise InvalidInput(
            f"{what} cannot be written in a Modelfile: it contains {codes}, which Modelfile parsers drop"
        )
    raise InvalidInput(
        f'{what} cannot be written in a Modelfile: a line in it ends with """, which would end the value there'
    )


def format_command(cmd: Command) -> str:
    """One command as one instruction (one or more lines, no final newline), as Ollama's `Command.String()`."""
    if cmd.name == "model":
        return "FROM " + quote_value(cmd.args, what="FROM", bare_first=True)
    if cmd.name in _KEYWORDS:
        keyword = _KEYWORDS[cmd.name]
        return f"{keyword} {quote_value(cmd.args, what=keyword)}"
    if cmd.name == "message":
        role, _, content = cmd.args.partition(": ")
        return f"MESSAGE {role} {quote_value(content, what=f'MESSAGE {role}')}"
    return f"PARAMETER {cmd.name} {quote_value(cmd.args, what=f'PARAMETER {cmd.name}')}"


def format_modelfile(mf: Modelfile) -> str:
    """The Modelfile's commands as text, in their order, one per line: Ollama's `Modelfile.String()`.

    Comments and blank lines are not commands and are not kept. `parse()` of the result gives the same
    commands (names and args); raises `InvalidInput` for a value no Modelfile can carry (see module doc).
    """
    return "".join(format_command(c) + "\n" for c in mf.commands)


def render_modelfile(
    *,
    froms: list[str],
    template: str | None = None,
    system: str | None = None,
    parameters: Mapping[str, object] | None = None,
    messages: Iterable[Message] | None = None,
    adapters: Iterable[str] = (),
    licenses: Iterable[str] = (),
) -> str:
    """Build a Modelfile from parts, in Ollama's order (server `Model.Commands()`, as `ollama show --modelfile`).

    FROM lines, TEMPLATE, SYSTEM, ADAPTERs, PARAMETERs (sorted by name; one line per element of a list),
    LICENSEs, MESSAGEs. Unlike Ollama, an empty-string TEMPLATE or SYSTEM is written (`SYSTEM ""`-like)
    rather than dropped, so `parse()` of the result has the same typed views as the arguments. Parameter
    values are written as given and not checked against KNOWN_PARAMETERS: a stored model may carry ones we
    do not know, and `show` should still print them. Raises `InvalidInput` for what cannot form a Modelfile:
    no FROM, an empty FROM or ADAPTER, a bad parameter name, a message role other than system/user/assistant,
    or a value no quoting can carry.
    """
    froms = list(froms)
    if not froms:
        raise InvalidInput("a Modelfile needs at least one FROM")
    commands: list[Command] = []
    for value in froms:
        if not value:
            raise InvalidInput("FROM cannot be empty")
        commands.append(Command("model", value))
    if template is not None:
        commands.append(Command("template", template))
    if system is not None:
        commands.append(Command("system", system))
    for value in adapters:
        if not value:
            raise InvalidInput("ADAPTER cannot be empty")
        commands.append(Command("adapter", value))
    params = parameters or {}
    for name in sorted(params):
        param = params[name]
        if param is None:
            continue
        if not _PARAM_NAME_RE.match(name) or name.lower() != name or name in Command.INSTRUCTION_NAMES:
            raise InvalidInput(f"parameter name {name!r} cannot be written in a Modelfile")
        items = param if isinstance(param, (list, tuple)) else [param]
        commands.extend(Command(name, format_parameter_value(item)) for item in items)
    commands.extend(Command("license", text) for text in licenses)
    for message in messages or ():
        if message.role not in MESSAGE_ROLES:
            raise InvalidInput(f"MESSAGE role {message.role!r} cannot be written: {ERR_INVALID_ROLE}")
        commands.append(Command("message", f"{message.role}: {message.content}"))
    return format_modelfile(Modelfile(commands))
