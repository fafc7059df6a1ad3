"""The builtin functions a pipeline can call (Go's, plus Ollama's `json` and `currentDate`).

`and` / `or` are registered by name only: they short-circuit, so the evaluator runs them itself.
"""

from __future__ import annotations

import html as _html
import json
import re
import time
import urllib.parse
from typing import Any, Callable

from llmctl.runtime.gotemplate.errors import TemplateError
from llmctl.runtime.gotemplate.limits import DEFAULT, too_wide
from llmctl.runtime.gotemplate.values import go_json, to_text, truth


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


def _number_spec(flags: str, width: str | None, prec: str | None) -> str:
    """Go's `%-+ #0` flags as a Python format spec: `-` left-aligns (Python's `<`), `0` pads unless left-aligned."""
    left = "-" in flags
    sign = "+" if "+" in flags else " " if " " in flags else ""
    return (("<" if left else "") + sign + ("#" if "#" in flags else "") + ("0" if "0" in flags and not left else "")
            + (width or "") + (f".{prec}" if prec else ""))


def printf(fmt: str, *args: Any, max_width: int = DEFAULT.max_width) -> str:
    """Go's Sprintf for the verbs templates use; a width or precision above `max_width` is refused before
    anything is padded (`%0999999999d` would be a gigabyte)."""
    if not isinstance(fmt, str):
        raise TemplateError(f"printf: format must be a string, not {type(fmt).__name__}")
    it = iter(args)

    def one(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        if width == "*":
            return f"%!{verb}(BADWIDTH)"  # Go takes the width from an argument; no Ollama template does
        for n in (width, prec):
            if n and int(n) > max_width:
                raise too_wide(int(n), max_width)
        try:
            a = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        flags = flags or ""
        if verb in "vsq":
            text = to_text(a) if verb != "q" else (
                json.dumps(to_text(a), ensure_ascii=False) if not isinstance(a, int) else repr(chr(a)))
            text = text[:int(prec)] if prec and verb != "q" else text
            w = int(width or 0)
            return text.ljust(w) if "-" in flags else text.rjust(w)
        spec = _number_spec(flags, width, prec)
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
    "printf": printf,
    "html": lambda *a: _html.escape(_sprint(*a)).replace("&#x27;", "&#39;"),
    "js": lambda *a: json.dumps(_sprint(*a))[1:-1].replace("'", "\\'"),
    "urlquery": lambda *a: urllib.parse.quote_plus(_sprint(*a)),
    "json": go_json,
    "currentDate": lambda: time.strftime("%Y-%m-%d"),
    "and": None,  # short-circuit: evaluated in evaluate._call
    "or": None,
}
