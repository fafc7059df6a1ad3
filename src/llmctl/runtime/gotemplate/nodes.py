"""The parse tree: what the parser builds, the evaluator walks, and `Template` inspects or edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
