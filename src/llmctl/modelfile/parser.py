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
    text = decode(data)
    commands: list[Command] = []
    state = _NIL
    buf: list[str] = []
    name = ""  # the command name being built: "model", "system", ..., or the parameter name
    role = ""
    line = 1  # line of the current character; CRLF counts once, a lone CR counts (Ollama: isNewline)
    cmd_line = 1  # line where the current instruction started
    cmd_start = 0  # index of the instruction's first character
    word_start = 0  # index of a PARAMETER name or MESSAGE role
    prev = ""

    def fail(reason: str) -> InvalidModelfile:
        return InvalidModelfile(reason, path=path, line=cmd_line)

    def bad_name(word: str) -> InvalidModelfile:
        if word.lower() in OLLAMA_ONLY_INSTRUCTIONS:
            return fail(f"unsupported instruction {word.upper()} (Ollama-only): {ERR_INVALID_COMMAND}")
        return fail(f"unknown instruction {word!r}: {ERR_INVALID_COMMAND}")

    for i, ch in enumerate(text):
        if prev == "\n" or (prev == "\r" and ch != "\n"):
            line += 1
        prev = ch

        # parseRuneForState: the next state, and the rune to keep (None: keep nothing).
        nxt: int = state
        r: str | None = ch
        if state == _NIL:
            if ch == "#":
                nxt, r = _COMMENT, None
            elif _is_space(ch) or _is_newline(ch):
                r = None
            else:
                nxt = _NAME
                cmd_line, cmd_start = line, i
        elif state == _NAME:
            if _is_space(ch):
                nxt, r = _VALUE, None
            elif not _is_alpha(ch):
                word = "".join(buf)
                if _is_newline(ch) and word.lower() in INSTRUCTIONS:
                    raise fail(f"missing value for {word.upper()}")
                raise bad_name(_word_at(text, cmd_start))
        elif state == _VALUE:
            if _is_newline(ch) or _is_space(ch):
                nxt = _NIL
        elif state == _PARAMETER:
            if _is_space(ch):
                nxt, r = _VALUE, None
            elif not (_is_alpha(ch) or "0" <= ch <= "9" or ch == "_"):
                if not buf and _is_newline(ch):
                    raise fail("missing parameter name and value after PARAMETER")
                if _is_newline(ch):
                    raise fail(f"missing value for parameter {''.join(buf).lower()}")
                raise fail(f"invalid parameter name {_word_at(text, word_start)!r}: use letters, digits and _")
        elif state == _MESSAGE:
            if _is_space(ch):
                nxt, r = _VALUE, None
            elif not _is_alpha(ch):
                word = "".join(buf)
                if _is_newline(ch) and not word:
                    raise fail("missing role and value after MESSAGE")
                if _is_newline(ch) and word in MESSAGE_ROLES:
                    raise fail(f"missing value for MESSAGE {word}")
                raise fail(f"invalid message role {_word_at(text, word_start)!r}: {ERR_INVALID_ROLE}")
        else:  # _COMMENT
            r = None
            if _is_newline(ch):
                nxt = _NIL

        if nxt != state:
            if state == _NAME:
                word = "".join(buf)
                lowered = word.lower()
                if lowered not in INSTRUCTIONS:
                    raise bad_name(_word_at(text, cmd_start))
                if lowered == "from":
                    name = "model"
                elif lowered == "parameter":
                    nxt, word_start = _PARAMETER, i + 1
                elif lowered == "message":
                    nxt, word_start, name = _MESSAGE, i + 1, "message"
                else:
                    name = lowered
            elif state == _PARAMETER:
                name = "".join(buf).lower()
                if name in Command.INSTRUCTION_NAMES:
                    # Ollama would emit a command indistinguishable from the instruction itself
                    # (`PARAMETER model x` acting as `FROM x`); no parameter has such a name.
                    raise fail(f"unknown parameter '{name}'")
            elif state == _MESSAGE:
                word = "".join(buf)
                if word not in MESSAGE_ROLES:
                    raise fail(f"invalid message role {word!r}: {ERR_INVALID_ROLE}")
                role = word
            elif state == _VALUE:
                value, ok = unquote(_trim("".join(buf)))
                if not ok or _is_space(ch):
                    buf.append(ch)  # kept verbatim: inside an open quote, or a blank inside a value
                    continue
                if role:
                    value, role = f"{role}: {value}", ""
                commands.append(Command(name, value, cmd_line))
            buf.clear()
            state = nxt

        if r is not None and _is_print(r):
            buf.append(r)

    # End of input: flush, as ParseFile does after its loop.
    if state == _VALUE:
        joined = _trim("".join(buf))
        value, ok = unquote(joined)
        if not ok:
            quote = '"""' if joined.startswith('"""') else '"'
            raise fail(f"unterminated {quote} string: reached the end of the file looking for the closing {quote}")
        if role:
            value = f"{role}: {value}"
        commands.append(Command(name, value, cmd_line))
    elif state == _NAME:
        word = "".join(buf)
        if word.lower() in INSTRUCTIONS:
            raise fail(f"missing value for {word.upper()}")
        raise bad_name(_word_at(text, cmd_start))
    elif state == _PARAMETER:
        if not buf:
            raise fail("missing parameter name and value after PARAMETER")
        raise fail(f"missing value for parameter {''.join(buf).lower()}")
    elif state == _MESSAGE:
        word = "".join(buf)
        if not word:
            raise fail("missing role and value after MESSAGE")
        if word in MESSAGE_ROLES:
            raise fail(f"missing value for MESSAGE {word}")
        raise fail(f"invalid message role {word!r}: {ERR_INVALID_ROLE}")

    if not any(c.name == "model" for c in commands):
        raise InvalidModelfile(ERR_MISSING_FROM, path=path)
    return commands


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
