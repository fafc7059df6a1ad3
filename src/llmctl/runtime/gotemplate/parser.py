"""Lexer items to a parse tree: block structure (`if` / `range` / `with` / `else` / `end`) and pipelines.

Unknown function names are rejected here, at parse time, as Go does, so a bad template fails when loaded
rather than on the first request that reaches the bad branch.
"""

from __future__ import annotations

import re
from typing import Any

from llmctl.runtime.gotemplate.errors import TemplateError
from llmctl.runtime.gotemplate.functions import FUNCS
from llmctl.runtime.gotemplate.lexer import go_unquote, split
from llmctl.runtime.gotemplate.limits import DEFAULT, too_deep
from llmctl.runtime.gotemplate.nodes import Action, Branch, ChainN, Cmd, DotN, FieldN, IdentN, Lit, Loop, Pipe, Text, VarN


def parse_tree(source: str, max_depth: int = DEFAULT.max_depth) -> list[Any]:
    """The top-level node list of `source`; blocks and parentheses nested deeper than `max_depth` are refused
    here, so neither parsing nor rendering can run out of stack."""
    return _Parser(source, max_depth).parse()


class _Parser:
    def __init__(self, source: str, max_depth: int) -> None:
        self.src = source
        self.max_depth = max_depth
        self.depth = 0

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise too_deep(self.max_depth)

    def parse(self) -> list[Any]:
        items = split(self.src)
        self.items, self.i = items, 0
        body, end = self._list()
        if end is not None:
            raise TemplateError(f"template: line {end[2]}: unexpected {{{{{end[0]}}}}}")
        return body

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
        self._enter()
        try:
            return self._branch_body(kind, tokens, line)
        finally:
            self.depth -= 1

    def _branch_body(self, kind: str, tokens: list, line: int) -> Branch:
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
            self._enter()
            try:
                node: Any = Pipe(self._cmds(stop=")"))
            finally:
                self.depth -= 1
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
            return Lit(text[1:-1] if kind == "raw" else go_unquote(text))
        if kind == "char":
            return Lit(ord(go_unquote(text)))
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
