"""Source text to items: literal text runs and tokenised actions, with `{{-` / `-}}` trim markers applied.

Trimming happens here, before parsing, because in Go it is purely lexical: it eats the whitespace next to the
delimiter whatever the action turns out to be (comments included).
"""

from __future__ import annotations

import re
from typing import Any

from llmctl.runtime.gotemplate.errors import TemplateError

_WS = " \t\r\n"
_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
      | (?P<op>:=|=|\||\(|\)|,)
      | (?P<str>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<char>'(?:[^'\\\n]|\\.)+')
      | (?P<num>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?))
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
      | (?P<dot>\.)
      | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_FIELDS = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")

Token = tuple[str, str]  # (kind, text)
Item = tuple[str, Any, int]  # ("text", str, line) or ("action", list[Token], line)


def go_unquote(tok: str) -> str:
    body = tok[1:-1]
    simple = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\", '"': '"', "'": "'"}
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[n]
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        else:  # octal
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
    return "".join(out)


def _lex_action(src: str, line: int) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise TemplateError(f"template: line {line}: unexpected {src[pos:pos + 10]!r} in action")
        kind = m.lastgroup or ""
        text = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "op" and text == ")" and pos < len(src) and src[pos] == ".":
            f = _FIELDS.match(src, pos)
            if f:  # (pipeline).Field
                tokens.append(("op", ")"))
                tokens.append(("chain", f.group()))
                pos = f.end()
                continue
        tokens.append((kind, text))
    return tokens


def split(src: str) -> list[Item]:
    """Text and action items, with trim markers applied."""
    out: list[Item] = []
    pos, trim_next = 0, False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim_next:
            text = text.lstrip(_WS)
        if start < 0:
            if text:
                out.append(("text", text, 0))
            return out
        line = src.count("\n", 0, start) + 1
        inner_start = start + 2
        if src.startswith("-", inner_start) and inner_start + 1 < len(src) and src[inner_start + 1] in _WS:
            text = text.rstrip(_WS)
            inner_start += 2
        if text:
            out.append(("text", text, line))
        if src.startswith("/*", inner_start):
            cend = src.find("*/", inner_start + 2)
            if cend < 0:
                raise TemplateError(f"template: line {line}: unclosed comment")
            close = src.find("}}", cend + 2)
            between = src[cend + 2:close]
            if close < 0 or between.strip(_WS) not in ("", "-"):
                raise TemplateError(f"template: line {line}: comment ends before closing delimiter")
            trim_next = between.strip(_WS) == "-"
            pos = close + 2
            continue
        end = _find_close(src, inner_start, line)
        inner = src[inner_start:end]
        trim_next = False
        if inner.endswith("-") and len(inner) >= 2 and inner[-2] in _WS:
            inner = inner[:-1]
            trim_next = True
        out.append(("action", _lex_action(inner, line), line))
        pos = end + 2


def _find_close(src: str, pos: int, line: int) -> int:
    """Index of the `}}` closing an action, skipping any inside quoted strings."""
    i = pos
    while i < len(src):
        c = src[i]
        if c in "\"'`":
            j = i + 1
            while j < len(src) and src[j] != c:
                j += 2 if src[j] == "\\" and c != "`" else 1
            i = j + 1
            continue
        if src.startswith("}}", i):
            return i
        i += 1
    raise TemplateError(f"template: line {line}: unclosed action")
