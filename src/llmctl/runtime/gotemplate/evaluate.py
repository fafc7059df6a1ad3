"""Executing a parse tree: pipelines, function calls, variables and `if` / `with` / `range`.

Variables live on one stack of `[name, value]` pairs; each block truncates it back on exit, which gives Go's
block scoping, and `$x = ...` rebinds the innermost `$x` in place. Every render counts its output and its
`range` steps against `Limits`, and checks each value a function makes, before anything large is built.
"""

from __future__ import annotations

from typing import Any, Callable

from llmctl.runtime.gotemplate.errors import TemplateError
from llmctl.runtime.gotemplate.functions import FUNCS, printf
from llmctl.runtime.gotemplate.limits import DEFAULT, Limits, too_long, too_many_iterations
from llmctl.runtime.gotemplate.nodes import Action, Branch, ChainN, DotN, FieldN, IdentN, Lit, Loop, Pipe, Text, VarN
from llmctl.runtime.gotemplate.values import field_of, to_text, truth


def render(root: list[Any], data: Any, limits: Limits = DEFAULT) -> str:
    """`root` rendered with `data` as `.` and `$`, within `limits` (TemplateLimitError beyond them)."""
    st = _State(data, limits)
    try:
        _walk(st, root, data)
    except (_Break, _Continue):
        raise TemplateError("{{break}} or {{continue}} outside {{range}}") from None
    except RecursionError:
        raise TemplateError("template nests too deeply") from None
    except (ValueError, OverflowError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # what Python's own conversions refuse (an int of 5000 digits as text...): the template's error
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None
    return "".join(st.out)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, root: Any, limits: Limits) -> None:
        self.vars: list[list[Any]] = [["$", root]]
        self.out: list[str] = []
        self.limits = limits
        self.size = 0
        self.steps = 0

    def emit(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.max_output:
            raise too_long(self.size, self.limits)
        self.out.append(text)

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.limits.max_iterations:
            raise too_many_iterations(self.limits)

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
    # text functions build one string of their arguments: refuse before building it, and after (widths)
    if sum(len(v) for v in values if isinstance(v, str)) > st.limits.max_output:
        raise too_long(st.size, st.limits)
    try:
        result = printf(*values, max_width=st.limits.max_width) if name == "printf" else FUNCS[name](*values)
    except TemplateError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise TemplateError(f"error calling {name}: {exc}") from None
    if isinstance(result, str) and len(result) > st.limits.max_output:
        raise too_long(len(result), st.limits)
    return result


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
            st.emit(node.text)
        elif isinstance(node, Action):
            value = _eval_pipe(st, node.pipe, dot)
            if node.pipe.decl:
                _declare(st, node.pipe, value)
            else:
                st.emit(to_text(value))
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
            if st.steps + value > st.limits.max_iterations:  # before a list of 10^8 pairs is made
                raise too_many_iterations(st.limits)
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
            st.step()
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
