"""Parsing and formatting of the units the planner talks in: durations, bytes, rates.

Kept apart from the arithmetic so every module prints numbers the same way and the CLI parses `500ms`,
`0.5s` and `2s` identically.
"""

from __future__ import annotations

import math
import re

from llmctl.errors import InvalidInput, UsageError

GB = 1_000_000_000
GiB = 1 << 30
MiB = 1 << 20

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m)?\s*$", re.IGNORECASE)
_SCALE = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_duration(text: str, *, what: str = "duration", default_unit: str = "ms") -> float:
    """`500ms`, `0.5s`, `2s` or a bare number (in `default_unit`) → seconds. Text that is no duration is a
    UsageError (a flag value that does not parse, as typer's own `--rate abc`); zero is InvalidInput."""
    m = _DURATION.match(text or "")
    if not m:
        raise UsageError(f"{what} {text!r} is not a duration", hint="write it like 500ms or 2s")
    value = float(m.group(1))
    unit = (m.group(2) or default_unit).lower()
    seconds = value * _SCALE[unit]
    if not 0 < seconds < math.inf:  # 400 digits of milliseconds overflow to infinity
        raise InvalidInput(f"{what} must be a positive, finite duration, got {text!r}")
    return seconds


def fmt_duration(seconds: float | None) -> str:
    """Seconds → the most readable unit (µs below 1 ms, ms below 10 s, else s)."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "∞"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 10:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.1f} s"


def fmt_bytes(n: float | None) -> str:
    """Decimal units (GB = 10^9 B), the unit GPU datasheets and model sizes use."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - loop always returns


def fmt_count(n: float) -> str:
    """Parameter and token counts: 405.9B, 70.6B, 1.2M, 9,216."""
    n = float(n)
    if abs(n) >= 1e9:
        return f"{n / 1e9:.1f}B"
    if abs(n) >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n:,.0f}"
