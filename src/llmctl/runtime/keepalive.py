"""Ollama's `keep_alive`: how long a model stays loaded after a request, from a number or a Go duration.

Parsed where a value enters (a request, `serve --keep-alive`, `load --keep-alive`) and nowhere else, so
what the scheduler holds is always a finite number of seconds or None ("forever"): NaN, infinities and
durations that no Go `time.Duration` can hold are refused here, never stored to break `ps` later.
"""

from __future__ import annotations

import re

from llmctl.errors import InvalidInput

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
MAX_KEEP_ALIVE = (2**63 - 1) / 1e9  # Go's longest time.Duration, ~292 years: what Ollama can hold


def _seconds(number: float, value: object) -> float | None:
    """A keep_alive in seconds: None (forever) when negative; NaN, infinities and what no Go duration can
    hold are refused (they would break every later `ps` and keep-alive deadline)."""
    shown = _shown(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidInput(f"keep_alive must be a finite duration, got {shown}")
    if number > MAX_KEEP_ALIVE:
        raise InvalidInput(f"keep_alive {shown} is too large (at most {MAX_KEEP_ALIVE:.0f} seconds; -1 keeps "
                           "the model loaded forever)")
    return None if number < 0 else float(number)


def parse_keep_alive(value: object, default: float | None = None) -> float | None:
    """Ollama's keep_alive: seconds as a number, or a Go duration string ("5m", "1h30m", "300ms").

    Returns seconds, or None for "forever" (any negative value). A plain number in a string counts as
    seconds, as `OLLAMA_KEEP_ALIVE=300` does. None or "" means `default`. NaN, infinities and durations
    beyond Go's (~292 years) are an InvalidInput.
    """
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidInput(f"keep_alive must be a duration like '5m' or a number of seconds, not {value!r}")
    if isinstance(value, float):
        return _seconds(value, value)
    if isinstance(value, int):  # Python ints have no bound: compare before turning one into a float
        return _seconds(-1.0 if value < 0 else float(value) if value <= MAX_KEEP_ALIVE else float("9e18"), value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _seconds(number, value)
        sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
        pos, total = 0, 0.0
        for match in _PART.finditer(body):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if body and pos == len(body):
            return _seconds(-total if sign < 0 and total > 0 else total, value)
    raise InvalidInput(f"keep_alive must be a duration like '5m', '1h', '30s', a number of seconds or -1; got {value!r}")


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python refuses more than 4300 digits)
        return "a number too large to print"
    return text if len(text) <= 40 else text[:40] + "..."
