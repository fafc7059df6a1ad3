"""A Go `text/template` interpreter for Ollama TEMPLATE layers.

Covers what Ollama's templates use: text, `{{ pipeline }}` output, `-` trim markers, comments, `if` / `else if`
/ `else with` / `else` / `end`, `range` (with `$i, $e :=`, over lists, maps (sorted keys) and integers,
`break`, `continue`), `with`, variables (`$x := ...`, `$x = ...`, `$`), field chains on maps and objects,
parenthesised pipelines, `|` pipes, and the builtin functions `and or not len index slice eq ne lt le gt ge
print printf println html js urlquery` plus Ollama's `json` and `currentDate`.

Differences from Go, on purpose: a missing key prints as "" (Go prints "<no value>"); a field looks up the
exact key, then the key with a lower-case first letter, then its snake_case form, so `.Function.Name` works
on OpenAI-shaped tool dicts. `define`, `template` and `block` are not supported (no Ollama template uses them).
"""

from __future__ import annotations

import html as _html
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from llmctl.errors import InvalidInput


class TemplateError(InvalidInput):
    """A template that does not parse or fails while executing."""


# -- nodes --------------------------------------------------------------------------------------------------
@dataclass
class Text:
    text: str


@dataclass
class FieldN:  # .A.B
    names: tuple[str, ...]


@dataclass
class VarN:  # $x.A.B, $ alone is name "$"
    name: str
    names: tuple[str, ...] = ()


@dataclass
class ChainN:  # (pipeline).A.B
    node: Any
    names: tuple[str, ...]


@dataclass
class DotN:
    pass


@dataclass
class IdentN:  # a function name
    name: str


@dataclass
class Lit:  # string, number, bool, nil
    value: Any


@dataclass
class Cmd:
    args: list[Any]


@dataclass
class Pipe:
    cmds: list[Cmd]
    decl: list[str] = field(default_factory=list)
    assign: bool = False  # `=` rather than `:=`


@dataclass
class Action:
    pipe: Pipe
    line: int = 0


@dataclass
class Branch:  # if / with / range
    kind: str
    pipe: Pipe
    body: list[Any]
    else_body: list[Any] | None = None
    line: int = 0


@dataclass
class Loop:  # break / continue
    kind: str


# -- lexing and parsing -------------------------------------------------------------------------------------
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


def _go_unquote(tok: str) -> str:
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


def _lex_action(src: str, line: int) -> list[tuple[str, str]]:
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


class _Parser:
    def __init__(self, source: str) -> None:
        self.src = source

    def parse(self) -> list[Any]:
        items = self._split()
        self.items, self.i = items, 0
        body, end = self._list()
        if end is not None:
            raise TemplateError(f"template: line {end[2]}: unexpected {{{{{end[0]}}}}}")
        return body

    def _split(self) -> list[tuple[str, Any, int]]:
        """Text and action items, with trim markers applied."""
        src, out, pos, trim_next = self.src, [], 0, False
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
            end = self._find_close(inner_start, line)
            inner = src[inner_start:end]
            trim_next = False
            if inner.endswith("-") and len(inner) >= 2 and inner[-2] in _WS:
                inner = inner[:-1]
                trim_next = True
            out.append(("action", _lex_action(inner, line), line))
            pos = end + 2

    def _find_close(self, pos: int, line: int) -> int:
        src, i = self.src, pos
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

    def _list(self) -> tuple[list[Any], tuple[str, list, int] | None]:
        """Nodes up to an `end` / `else` keyword (returned as the second value)."""
        nodes: list[Any] = []
        while self.i < len(self.items):
            kind, value, line = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(Text(value))
                continue
            if not value:
                raise TemplateError(f"template: line {line}: missing value for command")
            head = value[0]
            if head[0] == "ident" and head[1] in ("end", "else"):
                return nodes, (head[1], value[1:], line)
            if head[0] == "ident" and head[1] in ("if", "range", "with"):
                nodes.append(self._branch(head[1], value[1:], line))
            elif head[0] == "ident" and head[1] in ("break", "continue"):
                nodes.append(Loop(head[1]))
            elif head[0] == "ident" and head[1] in ("define", "template", "block"):
                raise TemplateError(f"template: line {line}: {{{{{head[1]}}}}} is not supported")
            else:
                nodes.append(Action(self._pipe(value, line), line))
        return nodes, None

    def _branch(self, kind: str, tokens: list, line: int) -> Branch:
        pipe = self._pipe(tokens, line, allow_two=(kind == "range"))
        body, end = self._list()
        if end is None:
            raise TemplateError(f"template: line {line}: unexpected EOF, missing {{{{end}}}} for {kind}")
        node = Branch(kind, pipe, body, None, line)
        word, rest, eline = end
        if word == "else":
            if rest and rest[0][0] == "ident" and rest[0][1] in ("if", "with"):
                # `else if` / `else with`: a nested branch that shares our `end`
                node.else_body = [self._branch(rest[0][1], rest[1:], eline)]
                return node
            if rest:
                raise TemplateError(f"template: line {eline}: unexpected tokens after else")
            node.else_body, end = self._list()
            if end is None or end[0] != "end":
                raise TemplateError(f"template: line {line}: expected {{{{end}}}} for {kind}")
        elif rest:
            raise TemplateError(f"template: line {eline}: unexpected tokens after end")
        return node

    def _pipe(self, tokens: list, line: int, allow_two: bool = False) -> Pipe:
        decl, assign = [], False
        # declarations: $x := ... | $x = ... | $i, $e := ...
        j = 0
        names = []
        while j < len(tokens) and tokens[j][0] == "var":
            names.append(tokens[j][1])
            if j + 1 < len(tokens) and tokens[j + 1] == ("op", ","):
                j += 2
                continue
            if j + 1 < len(tokens) and tokens[j + 1][0] == "op" and tokens[j + 1][1] in (":=", "="):
                decl, assign = names, tokens[j + 1][1] == "="
                tokens = tokens[j + 2:]
            break
        if len(decl) > (2 if allow_two else 1):
            raise TemplateError(f"template: line {line}: too many declarations")
        self.toks, self.k, self.line = tokens, 0, line
        cmds = self._cmds(stop=None)
        if not cmds:
            raise TemplateError(f"template: line {line}: missing value for command")
        return Pipe(cmds, decl, assign)

    def _cmds(self, stop: str | None) -> list[Cmd]:
        cmds, args = [], []
        while self.k < len(self.toks):
            kind, text = self.toks[self.k]
            self.k += 1
            if kind == "op" and text == ")":
                if stop != ")":
                    raise TemplateError(f"template: line {self.line}: unexpected )")
                break
            if kind == "op" and text == "|":
                if not args:
                    raise TemplateError(f"template: line {self.line}: missing command before |")
                cmds.append(Cmd(args))
                args = []
                continue
            args.append(self._operand(kind, text))
        else:
            if stop == ")":
                raise TemplateError(f"template: line {self.line}: unclosed (")
        if args:
            cmds.append(Cmd(args))
        return cmds

    def _operand(self, kind: str, text: str) -> Any:
        if kind == "op" and text == "(":
            node: Any = Pipe(self._cmds(stop=")"))
            if self.k < len(self.toks) and self.toks[self.k][0] == "chain":
                node = ChainN(node, tuple(self.toks[self.k][1].split(".")[1:]))
                self.k += 1
            return node
        if kind == "field":
            return FieldN(tuple(text.split(".")[1:]))
        if kind == "dot":
            return DotN()
        if kind == "var":
            head, _, rest = text.partition(".")
            return VarN(head, tuple(rest.split(".")) if rest else ())
        if kind in ("str", "raw"):
            return Lit(text[1:-1] if kind == "raw" else _go_unquote(text))
        if kind == "char":
            return Lit(ord(_go_unquote(text)))
        if kind == "num":
            t = text.replace("_", "")
            try:
                return Lit(int(t, 0) if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|\d+)", t) else float(t))
            except ValueError:
                raise TemplateError(f"template: line {self.line}: bad number {text!r}") from None
        if kind == "ident":
            if text in ("true", "false"):
                return Lit(text == "true")
            if text == "nil":
                return Lit(None)
            if text not in FUNCS:
                raise TemplateError(f'template: line {self.line}: function "{text}" not defined')
            return IdentN(text)
        raise TemplateError(f"template: line {self.line}: unexpected {text!r}")


# -- values -------------------------------------------------------------------------------------------------
def truth(v: Any) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, (int, float, str, list, tuple, dict, set)):
        return bool(v)
    return True


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def field_of(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        for key in (name, name[:1].lower() + name[1:], _snake(name)):
            if key in obj:
                return obj[key]
        return None
    for key in (name, name[:1].lower() + name[1:], _snake(name)):
        if hasattr(obj, key):
            value = getattr(obj, key)
            return value() if callable(value) and not isinstance(value, type) else value
    return None


def go_json(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=lambda o: getattr(o, "__dict__", str(o)))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def to_text(v: Any) -> str:
    """Go's fmt %v, for the values templates meet."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e21:
            return str(int(v))
        if v != v:
            return "NaN"
        return {float("inf"): "+Inf", float("-inf"): "-Inf"}.get(v, repr(v))
    if isinstance(v, dict):
        return go_json(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(to_text(x) for x in v) + "]"
    return str(v)


def _cmp_ok(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool)


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise TemplateError("missing argument for comparison")
    return any(_cmp_ok(a, b) and a == b for b in bs)


def _order(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def fn(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError:
            raise TemplateError(f"incompatible types for comparison: {a!r} and {b!r}") from None

    return fn


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    try:
        return len(v)
    except TypeError:
        raise TemplateError(f"len of {type(v).__name__}") from None


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k)
        elif isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or not 0 <= k < len(v):
                raise TemplateError(f"error calling index: index out of range: {k}")
            v = v[k]
        elif v is None:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {type(v).__name__}")
    return v


def _slice(v: Any, *idx: int) -> Any:
    if not isinstance(v, (list, tuple, str)):
        raise TemplateError(f"can't slice item of type {type(v).__name__}")
    if len(idx) > 3 or (len(idx) == 3 and isinstance(v, str)):
        raise TemplateError("too many slice indexes")
    i = idx[0] if idx else 0
    j = idx[1] if len(idx) > 1 else len(v)
    if not 0 <= i <= j <= len(v):
        raise TemplateError(f"error calling slice: index out of range: {i}:{j}")
    return v[i:j]


def _sprint(*args: Any) -> str:
    out = []
    for n, a in enumerate(args):
        if n and not isinstance(a, str) and not isinstance(args[n - 1], str):
            out.append(" ")
        out.append(to_text(a))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def one(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        try:
            a = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        spec = (flags or "") + (width or "") + (f".{prec}" if prec else "")
        if verb in "vs":
            return format(to_text(a), spec.replace("0", "") if spec else "")
        if verb == "q":
            return json.dumps(to_text(a), ensure_ascii=False) if not isinstance(a, int) else repr(chr(a))
        if verb == "d":
            return format(int(a), spec + "d")
        if verb in "feEgG":
            return format(float(a), spec + verb)
        if verb in "xXob":
            return format(int(a), spec + verb) if not isinstance(a, str) else a.encode().hex()
        if verb == "t":
            return to_text(bool(a))
        if verb == "c":
            return chr(int(a))
        return to_text(a)

    return _VERB.sub(one, fmt)


FUNCS: dict[str, Callable[..., Any]] = {
    "not": lambda v: not truth(v),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _order(lambda a, b: a < b),
    "le": _order(lambda a, b: a <= b),
    "gt": _order(lambda a, b: a > b),
    "ge": _order(lambda a, b: a >= b),
    "print": _sprint,
    "println": lambda *a: " ".join(to_text(x) for x in a) + "\n",
    "printf": _printf,
    "html": lambda *a: _html.escape(_sprint(*a)).replace("&#x27;", "&#39;"),
    "js": lambda *a: json.dumps(_sprint(*a))[1:-1].replace("'", "\\'"),
    "urlquery": lambda *a: urllib.parse.quote_plus(_sprint(*a)),
    "json": go_json,
    "currentDate": lambda: time.strftime("%Y-%m-%d"),
    "and": None,  # short-circuit: evaluated in _call
    "or": None,
}


# -- execution ----------------------------------------------------------------------------------------------
class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, root: Any) -> None:
        self.vars: list[list[Any]] = [["$", root]]
        self.out: list[str] = []

    def lookup(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f'undefined variable "{name}"')

    def assign(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise TemplateError(f'undefined variable "{name}"')


def _eval_arg(st: _State, node: Any, dot: Any) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, DotN):
        return dot
    if isinstance(node, FieldN):
        v = dot
        for n in node.names:
            v = field_of(v, n)
        return v
    if isinstance(node, VarN):
        v = st.lookup(node.name)
        for n in node.names:
            v = field_of(v, n)
        return v
    if isinstance(node, ChainN):
        v = _eval_pipe(st, node.node, dot)
        for n in node.names:
            v = field_of(v, n)
        return v
    if isinstance(node, Pipe):
        return _eval_pipe(st, node, dot)
    if isinstance(node, IdentN):
        return _call(st, node.name, [], dot, None, False)
    raise TemplateError(f"can't evaluate {node!r}")


def _call(st: _State, name: str, args: list[Any], dot: Any, final: Any, has_final: bool) -> Any:
    if name in ("and", "or"):
        thunks: list[Callable[[], Any]] = [lambda a=a: _eval_arg(st, a, dot) for a in args]
        if has_final:
            thunks.append(lambda: final)
        if not thunks:
            raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
        v = None
        for t in thunks:
            v = t()
            if truth(v) != (name == "and"):
                return v
        return v
    values = [_eval_arg(st, a, dot) for a in args]
    if has_final:
        values.append(final)
    try:
        return FUNCS[name](*values)
    except TemplateError:
        raise
    except TypeError as exc:
        raise TemplateError(f"error calling {name}: {exc}") from None


def _eval_pipe(st: _State, pipe: Pipe, dot: Any) -> Any:
    value, has = None, False
    for cmd in pipe.cmds:
        first = cmd.args[0]
        if isinstance(first, IdentN):
            value = _call(st, first.name, cmd.args[1:], dot, value, has)
        else:
            if len(cmd.args) > 1 or has:
                raise TemplateError(f"can't give argument to non-function {first!r}")
            value = _eval_arg(st, first, dot)
        has = True
    return value


def _declare(st: _State, pipe: Pipe, value: Any) -> None:
    if not pipe.decl:
        return
    if pipe.assign:
        st.assign(pipe.decl[0], value)
    else:
        st.vars.append([pipe.decl[0], value])


def _walk(st: _State, nodes: list[Any], dot: Any) -> None:
    for node in nodes:
        if isinstance(node, Text):
            st.out.append(node.text)
        elif isinstance(node, Action):
            value = _eval_pipe(st, node.pipe, dot)
            if node.pipe.decl:
                _declare(st, node.pipe, value)
            else:
                st.out.append(to_text(value))
        elif isinstance(node, Branch):
            mark = len(st.vars)
            try:
                _branch(st, node, dot)
            finally:
                del st.vars[mark:]
        elif isinstance(node, Loop):
            raise _Break() if node.kind == "break" else _Continue()


def _branch(st: _State, node: Branch, dot: Any) -> None:
    if node.kind == "range":
        value = _eval_pipe(st, node.pipe, dot)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple, str)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {value!r}")
        if not items:
            if node.else_body is not None:
                _walk(st, node.else_body, dot)
            return
        for key, elem in items:
            mark = len(st.vars)
            decl = node.pipe.decl
            if len(decl) == 1:
                st.vars.append([decl[0], elem])
            elif len(decl) == 2:
                st.vars.append([decl[0], key])
                st.vars.append([decl[1], elem])
            try:
                _walk(st, node.body, elem)
            except _Break:
                break
            except _Continue:
                continue
            finally:
                del st.vars[mark:]
        return
    value = _eval_pipe(st, node.pipe, dot)
    if node.pipe.decl:
        _declare(st, node.pipe, value)
    if truth(value):
        _walk(st, node.body, value if node.kind == "with" else dot)
    elif node.else_body is not None:
        _walk(st, node.else_body, dot)


# -- public API ---------------------------------------------------------------------------------------------
class Template:
    """A parsed template. `execute(data)` renders it with `data` as `.` and `$`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.root = _Parser(source).parse()

    def execute(self, data: Any) -> str:
        st = _State(data)
        try:
            _walk(st, self.root, data)
        except (_Break, _Continue):
            raise TemplateError("{{break}} or {{continue}} outside {{range}}") from None
        except RecursionError:
            raise TemplateError("template nests too deeply") from None
        return "".join(st.out)

    def identifiers(self) -> set[str]:
        """Lower-cased field and variable names, as Ollama's `Template.Vars()` reports them."""
        names: set[str] = set()

        def walk(nodes: list[Any]) -> None:
            for n in nodes:
                if isinstance(n, Action):
                    pipe(n.pipe)
                elif isinstance(n, Branch):
                    pipe(n.pipe)
                    walk(n.body)
                    walk(n.else_body or [])

        def pipe(p: Pipe) -> None:
            for c in p.cmds:
                for a in c.args:
                    if isinstance(a, FieldN):
                        names.update(x.lower() for x in a.names)
                    elif isinstance(a, VarN):
                        names.update(x.lower() for x in (a.name, *a.names))
                    elif isinstance(a, Pipe):
                        pipe(a)

        walk(self.root)
        return names

    def append_response(self) -> None:
        """Ollama's touch-up for templates that mention neither .Messages nor .Response."""
        self.root.append(Action(Pipe([Cmd([FieldN(("Response",))])])))

    def cut_after_response(self) -> "Template":
        """A copy without everything after the first `.Response` field (Ollama's `deleteNode`)."""
        import copy

        clone = copy.deepcopy(self)
        cut = False

        def pred(n: Any) -> bool:
            nonlocal cut
            if isinstance(n, FieldN) and "Response" in n.names:
                cut = True
                return False
            return cut

        def walk(n: Any) -> Any:
            if pred(n):
                return None
            if isinstance(n, list):
                n[:] = [c for c in (walk(c) for c in n) if c is not None]
                return n
            if isinstance(n, Branch):
                walk(n.body)
                if n.else_body is not None and walk(n.else_body) is None:
                    n.else_body = []
            elif isinstance(n, Action):
                if walk(n.pipe) is None:
                    return None
            elif isinstance(n, Pipe):
                cmds = []
                for c in n.cmds:
                    args = [a for a in (walk(a) for a in c.args) if a is not None]
                    if not args:
                        return None
                    c.args = args
                    cmds.append(c)
                if not cmds:
                    return None
                n.cmds = cmds
            return n

        walk(clone.root)
        return clone


def parse(source: str) -> Template:
    return Template(source)
