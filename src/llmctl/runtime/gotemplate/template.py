"""`Template`: a parsed template, its rendering, and the tree edits Ollama makes before rendering."""

from __future__ import annotations

import copy
from typing import Any

from llmctl.runtime.gotemplate.evaluate import render
from llmctl.runtime.gotemplate.limits import DEFAULT, Limits
from llmctl.runtime.gotemplate.nodes import Action, Branch, Cmd, FieldN, Pipe, VarN
from llmctl.runtime.gotemplate.parser import parse_tree


class Template:
    """A parsed template. `execute(data)` renders it with `data` as `.` and `$`, within `limits`."""

    def __init__(self, source: str, max_depth: int = DEFAULT.max_depth) -> None:
        self.source = source
        self.root = parse_tree(source, max_depth)

    def execute(self, data: Any, limits: Limits = DEFAULT) -> str:
        return render(self.root, data, limits)

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


def parse(source: str, max_depth: int = DEFAULT.max_depth) -> Template:
    return Template(source, max_depth)
