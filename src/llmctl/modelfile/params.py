"""PARAMETER names, their types, and Ollama-compatible parsing of their values.

Source of truth: Ollama's `api/types.go` (`Options` and its embedded `Runner`; the JSON tag of each field is
the parameter name) and `api.FormatParams`, which turns the text after `PARAMETER name` into a typed value
with Go's `strconv.ParseInt(s, 10, 64)`, `strconv.ParseFloat(s, 32)` or `strconv.ParseBool(s)`. We re-implement
those three parsers here instead of using `int()`/`float()`, because Python's accept text Go rejects
(" 1", "1_0" for ints, "١٢" in any Unicode digit) and a Modelfile must mean the same thing to both tools.

Ollama's `parser/parser.go` also lists parameters that it still *accepts* in a Modelfile but ignores with a
warning (`deprecatedParameters`); we accept and ignore the same ones, so every Modelfile Ollama takes, we take.
"""

from __future__ import annotations

import math
import re
import struct

from llmctl.errors import InvalidInput

# Ollama api.Options + api.Runner, current upstream. `list` means a list of strings that grows by one entry
# per PARAMETER line (only `stop`); every other parameter is a scalar where the last line wins.
KNOWN_PARAMETERS: dict[str, type] = {
    # Runner: fixed when the model is loaded
    "num_ctx": int,
    "num_batch": int,
    "num_gpu": int,
    "main_gpu": int,
    "use_mmap": bool,
    "num_thread": int,
    "draft_num_predict": int,
    # Options: per request
    "num_keep": int,
    "seed": int,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "typical_p": float,
    "repeat_last_n": int,
    "temperature": float,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "stop": list,
}

# Ollama parser.go `deprecatedParameters`: accepted in a Modelfile, value not checked, then dropped
# ("warning: parameter mirostat is deprecated"). They never reach `Modelfile.parameters`.
DEPRECATED_PARAMETERS: frozenset[str] = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)

_EXPECTED = {int: "an integer", float: "a number", bool: "true or false"}

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
# Go float literal, decimal form: digits with single underscores between digits, optional fraction and exponent.
_DIGITS = r"[0-9](?:_?[0-9])*"
_DEC_FLOAT_RE = re.compile(rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?\Z")
# Go hexadecimal float: 0x mantissa, and a p exponent, which Go requires (0x1.8 alone is rejected).
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_HEX_FLOAT_RE = re.compile(
    rf"(?P<sign>[+-]?)0[xX]_?(?P<mant>{_HEX}(?:\.(?:{_HEX})?)?|\.{_HEX})[pP](?P<exp>[+-]?{_DIGITS})\Z"
)
_INF_RE = re.compile(r"[+-]?(?:inf|infinity)\Z", re.IGNORECASE)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def go_parse_int(text: str) -> int | None:
    """Go's `strconv.ParseInt(text, 10, 64)`: ASCII digits with an optional sign, in int64; else None."""
    if not _INT_RE.match(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def go_parse_bool(text: str) -> bool | None:
    """Go's `strconv.ParseBool`: exactly these spellings, nothing else (no "yes", no "on")."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


class _OutOfRange(ValueError):
    """A well-formed number that does not fit a float32 (Go's strconv.ErrRange)."""


def go_parse_float32(text: str) -> float | None:
    """Go's `strconv.ParseFloat(text, 32)`: the value, None when malformed, _OutOfRange when too large.

    The value returned is the float64 nearest to the text, not the float32 Ollama stores: `0.1` stays 0.1
    so that what we write back into a Modelfile reads the same. The range check is float32's, as Ollama's.
    """
    if text.lower() == "nan":  # Go takes "NaN" in any case but no sign before it
        return math.nan
    if _INF_RE.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _DEC_FLOAT_RE.match(text):
        value = float(text.replace("_", ""))
    elif m := _HEX_FLOAT_RE.match(text):
        mant = m["mant"].replace("_", "")
        value = float.fromhex(f"{m['sign']}0x{mant}p{m['exp'].replace('_', '')}")
    else:
        return None
    try:
        struct.pack("<f", value)  # rounds to float32; raises where that rounding overflows, as Go does
    except OverflowError:
        raise _OutOfRange(text) from None
    return value


def coerce_parameter(name: str, value: str) -> object:
    """Turn the text of `PARAMETER name value` into its typed value, as Ollama's `api.FormatParams` does.

    Returns int, float or bool for scalars and a one-element `list[str]` for list parameters (`stop`), so a
    caller merging several lines can always extend lists and replace scalars. Raises `InvalidInput` for an
    unknown or deprecated name and for a value of the wrong type; `parse()` adds the file and line.
    """
    kind = KNOWN_PARAMETERS.get(name)
    if kind is None:
        if name in DEPRECATED_PARAMETERS:
            raise InvalidInput(f"parameter '{name}' is deprecated: Ollama and llmctl ignore it")
        raise InvalidInput(f"unknown parameter '{name}'")
    if kind is list:
        return [value]
    result: object | None
    try:
        if kind is int:
            result = go_parse_int(value)
            if result is None and _INT_RE.match(value):
                raise _OutOfRange(value)
        elif kind is float:
            result = go_parse_float32(value)
        else:
            result = go_parse_bool(value)
    except _OutOfRange:
        raise InvalidInput(f"invalid value for parameter {name}: {value!r} (out of range)") from None
    if result is None:
        raise InvalidInput(f"invalid value for parameter {name}: {value!r} (expected {_EXPECTED[kind]})")
    return result


def format_parameter_value(value: object) -> str:
    """The text that `coerce_parameter` reads back as `value` (one list element at a time for lists)."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float: "0.7", "1e-05", "inf"
    return str(value)
