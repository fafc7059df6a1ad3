"""Modelfile text -> commands: a rune-by-rune port of Ollama's `parser.ParseFile` (ollama/ollama, parser/parser.go).

Why a literal port rather than a line-based parser: the format has no grammar beyond that state machine, and
its corner cases (where a value ends, what `"` means in the middle of a value, which characters are dropped)
are only defined by it. Keeping the same states makes "same input, same commands" checkable line by line.

What Ollama's machine does, in short:

- Between instructions (state nil) blanks and line breaks are skipped; `#` there starts a comment that runs to
  the end of the line. A `#` anywhere else is ordinary text (`FROM x # y` has the value `x # y`).
- An instruction name is ASCII letters, case-insensitive, ended by a space or tab.
- `PARAMETER` is followed by a name of letters, digits and `_`, then a blank, then the value. `MESSAGE` is
  followed by a role (exactly `system`, `user` or `assistant`, case-sensitive), a blank, then the value.
- A value runs to the first line break at which the text so far, with surrounding whitespace trimmed, is
  complete: unquoted; or `"` ... `"`; or `\"\"\"` ... `\"\"\"`. Quotes are simply stripped: there are no escapes.
  Until a value is complete, line breaks (`\\r` and `\\n` both) and tabs are kept in it verbatim.
- Characters that Go's `strconv.IsPrint` rejects (controls other than tab/CR/LF, format characters, and
  every space but U+0020, NBSP included) are dropped wherever they appear.

Where we differ from Ollama, and why (see docs/modelfile.md, "Differences from Ollama"):

- Line numbers: Ollama counts `\\r` and `\\n` separately (a CRLF file reports twice the line) and reports the
  line *after* an error found at a line break. We count CRLF once and report the line of the instruction.
- Error texts name what is wrong (Ollama says "unexpected EOF" for half of them).
- Parameter names are lower-cased (`PARAMETER Temperature 1` works; Ollama fails later with "unknown parameter").
- Only the seven classic instructions: Ollama's newer DRAFT, RENDERER, PARSER and REQUIRES are refused with a
  message saying so, because nothing in llmctl would honour them and dropping them silently would be worse.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from llmctl.errors import InvalidInput, InvalidModelfile
from llmctl.modelfile.params import DEPRECATED_PARAMETERS, coerce_parameter
from llmctl.modelfile.types import Command, Modelfile

INSTRUCTIONS = ("from", "license", "template", "system", "adapter", "parameter", "message")
# Instructions of newer Ollama releases that llmctl refuses by name rather than as unknown words.
OLLAMA_ONLY_INSTRUCTIONS = ("draft", "renderer", "parser", "requires")
MESSAGE_ROLES = ("system", "user", "assistant")

ERR_MISSING_FROM = "no FROM line"
ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "parameter", or "message"'
)
ERR_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'

# States, as in parser.go.
_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)


def decode(data: bytes | str) -> str:
    """Bytes -> text the way Ollama reads a Modelfile: `unicode.BOMOverride(unicode.UTF8.NewDecoder())`.

    A UTF-8 BOM is dropped, a UTF-16 BOM (either byte order) switches to UTF-16, anything else is UTF-8.
    Undecodable bytes become U+FFFD instead of failing, as Go's decoder does.
    """
    if isinstance(data, str):
        return data
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith(codecs.BOM_UTF16_BE):
        return data[2:].decode("utf-16-be", errors="replace")
    if data.startswith(codecs.BOM_UTF16_LE):
        return data[2:].decode("utf-16-le", errors="replace")
    return data.decode("utf-8", errors="replace")


def _is_alpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _is_space(c: str) -> bool:
    return c == " " or c == "\t"


def _is_newline(c: str) -> bool:
    return c == "\r" or c == "\n"


def _is_print(c: str) -> bool:
    # Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and U+0020. Python's isprintable()
    # is defined as exactly that complement (not Other, not Separator, except the ASCII space).
    return c.isprintable()


def unquote(s: str) -> tuple[str, bool]:
    """parser.go `unquote`: strip `\"\"\"` or `"` pairs; (value, complete?). No escape sequences exist."""
    if s.startswith('"""'):
        if len(s) >= 6 and s.endswith('"""'):
            return s[3:-3], True
        return "", False
    if s.startswith('"'):
        if len(s) >= 2 and s.endswith('"'):
            return s[1:-1], True
        return "", False
    return s, True


def _trim(s: str) -> str:
    # Go's strings.TrimSpace; the buffer only ever holds printable runes plus space, tab, CR and LF.
    return s.strip(" \t\r\n")


def _word_at(text: str, start: int) -> str:
    """The run of non-blank characters at `start`, for error messages, shortened if it is long."""
    end = start
    while end < len(text) and not (_is_space(text[end]) or _is_newline(text[end])):
        end += 1
    word = text[start:end]
    return word if len(word) <= 40 else word[:40] + "..."


def parse_commands(data: bytes | str, path: str | None = None) -> list[Command]:
    """The syntax layer: Ollama's `ParseFile`, commands in file order, parameter values left unchecked.

    Raises `InvalidModelfile` for anything `ParseFile` rejects, including a file without FROM. `parse()`
    builds on this and also checks parameter names and values (which Ollama does later, in CreateRequest).
    """
    machine = _Machine(decode(data), path)
    prev = ""
    for i, ch in enumerate(machine.text):
        if prev == "\n" or (prev == "\r" and ch != "\n"):
            machine.line += 1
        prev = ch
        nxt, r = machine.next_state(i, ch)
        if nxt != machine.state and not machine.switch(nxt, i, ch):
            continue
        if r is not None and _is_print(r):
            machine.buf.append(r)
    machine.finish()
    if not any(c.name == "model" for c in machine.commands):
        raise InvalidModelfile(ERR_MISSING_FROM, path=path)
    return machine.commands


@dataclass
class _Machine:
    """ParseFile's state machine over one text: the state, the rune buffer and where the instruction began."""

    text: str
    path: str | None
    commands: list[Command] = field(default_factory=list)
    state: int = _NIL
    buf: list[str] = field(default_factory=list)
    name: str = ""  # the command name being built: "model", "system", ..., or the parameter name
    role: str = ""
    line: int = 1  # line of the current character; CRLF counts once, a lone CR counts (Ollama: isNewline)
    cmd_line: int = 1  # line where the current instruction started
    cmd_start: int = 0  # index of the instruction's first character
    word_start: int = 0  # index of a PARAMETER name or MESSAGE role

    def next_state(self, i: int, ch: str) -> tuple[int, str | None]:
        """parseRuneForState: the next state, and the rune to keep (None: keep nothing)."""
        state = self.state
        if state == _NIL:
            if ch == "#":
                return _COMMENT, None
            if _is_space(ch) or _is_newline(ch):
                return state, None
            self.cmd_line, self.cmd_start = self.line, i
            return _NAME, ch
        if state == _NAME:
            if _is_space(ch):
                return _VALUE, None
            if not _is_alpha(ch):
                raise self.name_error(ch)
        elif state == _VALUE:
            if _is_newline(ch) or _is_space(ch):
                return _NIL, ch
        elif state == _PARAMETER:
            if _is_space(ch):
                return _VALUE, None
            if not (_is_alpha(ch) or "0" <= ch <= "9" or ch == "_"):
                raise self.parameter_error(ch)
        elif state == _MESSAGE:
            if _is_space(ch):
                return _VALUE, None
            if not _is_alpha(ch):
                raise self.message_error(ch)
        else:  # _COMMENT
            return (_NIL if _is_newline(ch) else state), None
        return state, ch

    def switch(self, nxt: int, i: int, ch: str) -> bool:
        """Leave the current state for `nxt`, emitting what it built. False: the value is not complete yet
        (an open quote, or a blank inside it), so `ch` was kept in it verbatim and the state stays."""
        state = self.state
        if state == _NAME:
            nxt = self._instruction(nxt, i)
        elif state == _PARAMETER:
            self.name = "".join(self.buf).lower()
            if self.name in Command.INSTRUCTION_NAMES:
                # Ollama would emit a command indistinguishable from the instruction itself
                # (`PARAMETER model x` acting as `FROM x`); no parameter has such a name.
                raise self.fail(f"unknown parameter '{self.name}'")
        elif state == _MESSAGE:
            word = "".join(self.buf)
            if word not in MESSAGE_ROLES:
                raise self.fail(f"invalid message role {word!r}: {ERR_INVALID_ROLE}")
            self.role = word
        elif state == _VALUE:
            value, ok = unquote(_trim("".join(self.buf)))
            if not ok or _is_space(ch):
                self.buf.append(ch)
                return False
            self._emit(value)
        self.buf.clear()
        self.state = nxt
        return True

    def _instruction(self, nxt: int, i: int) -> int:
        """The instruction name just read: what the command is called, and the state its value starts in."""
        lowered = "".join(self.buf).lower()
        if lowered not in INSTRUCTIONS:
            raise self.bad_name()
        if lowered == "from":
            self.name = "model"
        elif lowered == "parameter":
            nxt, self.word_start = _PARAMETER, i + 1
        elif lowered == "message":
            nxt, self.word_start, self.name = _MESSAGE, i + 1, "message"
        else:
            self.name = lowered
        return nxt

    def _emit(self, value: str) -> None:
        if self.role:
            value, self.role = f"{self.role}: {value}", ""
        self.commands.append(Command(self.name, value, self.cmd_line))

    def finish(self) -> None:
        """End of input: flush, as ParseFile does after its loop."""
        if self.state == _VALUE:
            joined = _trim("".join(self.buf))
            value, ok = unquote(joined)
            if not ok:
                quote = '"""' if joined.startswith('"""') else '"'
                raise self.fail(f"unterminated {quote} string: reached the end of the file looking for the closing "
                                f"{quote}")
            self._emit(value)
        elif self.state == _NAME:
            raise self.name_error(None)
        elif self.state == _PARAMETER:
            raise self.parameter_error(None)
        elif self.state == _MESSAGE:
            raise self.message_error(None)

    # -- errors: `ch` is the character that cut the word short, None the end of the input ---------------
    def fail(self, reason: str) -> InvalidModelfile:
        return InvalidModelfile(reason, path=self.path, line=self.cmd_line)

    def bad_name(self) -> InvalidModelfile:
        word = _word_at(self.text, self.cmd_start)
        if word.lower() in OLLAMA_ONLY_INSTRUCTIONS:
            return self.fail(f"unsupported instruction {word.upper()} (Ollama-only): {ERR_INVALID_COMMAND}")
        return self.fail(f"unknown instruction {word!r}: {ERR_INVALID_COMMAND}")

    def name_error(self, ch: str | None) -> InvalidModelfile:
        word = "".join(self.buf)
        if (ch is None or _is_newline(ch)) and word.lower() in INSTRUCTIONS:
            return self.fail(f"missing value for {word.upper()}")
        return self.bad_name()

    def parameter_error(self, ch: str | None) -> InvalidModelfile:
        if ch is None or _is_newline(ch):
            if not self.buf:
                return self.fail("missing parameter name and value after PARAMETER")
            return self.fail(f"missing value for parameter {''.join(self.buf).lower()}")
        return self.fail(f"invalid parameter name {_word_at(self.text, self.word_start)!r}: use letters, digits and _")

    def message_error(self, ch: str | None) -> InvalidModelfile:
        word = "".join(self.buf)
        if ch is None or _is_newline(ch):
            if not word:
                return self.fail("missing role and value after MESSAGE")
            if word in MESSAGE_ROLES:
                return self.fail(f"missing value for MESSAGE {word}")
        shown = word if ch is None else _word_at(self.text, self.word_start)
        return self.fail(f"invalid message role {shown!r}: {ERR_INVALID_ROLE}")


def parse(data: bytes | str, path: str | None = None) -> Modelfile:
    """Parse a Modelfile and check it as `ollama create` would, before touching any file or model.

    On top of `parse_commands`: FROM and ADAPTER need a non-empty value; every PARAMETER must be a known
    name with a value of its type (Ollama checks this in CreateRequest; we do it here so the error can carry
    the line). Deprecated parameters are accepted unchecked and left out of `Modelfile.parameters`, as
    Ollama does. Every error is `InvalidModelfile` reading `path:line: reason`.
    """
    commands = parse_commands(data, path)
    for cmd in commands:
        if cmd.name in ("model", "adapter") and not cmd.args:
            keyword = "FROM" if cmd.name == "model" else "ADAPTER"
            raise InvalidModelfile(f"missing value for {keyword}", path=path, line=cmd.line)
        if cmd.name in Command.INSTRUCTION_NAMES:
            continue
        if not cmd.name:  # "PARAMETER  x 1": two blanks make Ollama read an empty name
            raise InvalidModelfile("missing parameter name after PARAMETER", path=path, line=cmd.line)
        if cmd.name in DEPRECATED_PARAMETERS:
            continue
        try:
            coerce_parameter(cmd.name, cmd.args)
        except InvalidInput as exc:
            raise InvalidModelfile(exc.message, path=path, line=cmd.line) from None
    return Modelfile(commands, path)
