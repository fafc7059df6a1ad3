"""How Go sees Python values: truthiness, field lookup, JSON and `%v` text."""

from __future__ import annotations

import json
import re
from typing import Any


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
