"""Help pages as plain text: typer's panel layout, drawn without rich, so `llmctl --help` needs neither.

Both front doors of the CLI print help through `render`: the typer app (`cli/typer_help.py` turns click's
parameters into a `Page`) and the fast dispatcher (`cli/fast.py` builds the root page from the command
table). One renderer means the two can only differ in what they are given, and a test compares them.

Metavars read as typer users know them (TEXT, INTEGER, PATH; nothing for a flag), help text is taken
literally (no markup: "[default: 8]" in a help string stays as written), paragraphs are re-wrapped to the
terminal and indented blocks (examples) are kept as written. No colour: the output is the same on a
terminal, in a pipe and in a test.

Row, Panel and Page are NamedTuples of the stdlib's collections (typing's or dataclasses would import
typing or inspect: ~7 ms of a ~30 ms `llmctl --help`).
"""

from __future__ import annotations

import sys
from collections import namedtuple

DEFAULT_WIDTH = 80
MIN_TEXT_WIDTH = 20  # the help column never gets narrower; a tiny terminal gets longer lines instead
UNICODE_BOX = ("╭", "╮", "╰", "╯", "─", "│")
ASCII_BOX = ("+", "+", "+", "+", "-", "|")


# One line of a panel: fixed columns (names, metavar: a tuple of str), then help text that wraps.
Row = namedtuple("Row", "cells text")
# A titled box of rows.
Panel = namedtuple("Panel", "title rows")
# A whole page: the usage line ("llmctl list [OPTIONS]"), the command's help as written, its panels.
Page = namedtuple("Page", "usage text panels")


def cleandoc(text: str) -> str:
    """inspect.cleandoc without importing inspect (~5 ms): first line stripped, the rest dedented."""
    lines = text.expandtabs().split("\n")
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    margin = min(indents) if indents else 0
    lines = [lines[0].strip()] + [line[margin:].rstrip() for line in lines[1:]]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def paragraphs(text: str) -> list[list[str]]:
    """Paragraphs of a help text, each a list of lines; what follows a form feed is not shown (click's rule)."""
    text = cleandoc(text).partition("\f")[0]
    out: list[list[str]] = []
    block: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            out.append(block)
            block = []
    if block:
        out.append(block)
    return out


def summary(text: str) -> str:
    """The first paragraph on one line: what a command list shows for a command."""
    paras = paragraphs(text)
    return " ".join(" ".join(line.split()) for line in paras[0]) if paras else ""


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap; a word longer than the width (a URL, a path) gets a line of its own, unbroken."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def text_lines(text: str, width: int) -> list[str]:
    """A help text laid out: prose re-wrapped, indented blocks (examples) and \\b paragraphs kept as written."""
    out: list[str] = []
    for para in paragraphs(text):
        if out:
            out.append("")
        if para[0].startswith("\b"):
            out += [line for line in para[1:]] if para[0].strip("\b") == "" else [para[0].lstrip("\b")] + para[1:]
        elif para[0][:1].isspace():
            out += para
        else:
            out += wrap(" ".join(para), width)
    return out


def panel_lines(panel: Panel, width: int, box: tuple[str, ...] = UNICODE_BOX) -> list[str]:
    """A titled box; columns as wide as their widest cell (empty columns dropped), help wrapped in the rest."""
    tl, tr, bl, br, h, v = box
    ncols = max(len(row.cells) for row in panel.rows)
    cells = [row.cells + ("",) * (ncols - len(row.cells)) for row in panel.rows]
    widths = [max(len(c[i]) for c in cells) for i in range(ncols)]
    keep = [i for i in range(ncols) if widths[i]]
    lead = sum(widths[i] + 2 for i in keep)
    text_width = max(width - 4 - lead, MIN_TEXT_WIDTH)
    inner = lead + text_width
    lines = [f"{tl}{h} {panel.title} {h * max(inner - 1 - len(panel.title), 1)}{tr}"]
    for row, row_cells in zip(panel.rows, cells):
        head = "".join(row_cells[i].ljust(widths[i] + 2) for i in keep)
        for n, piece in enumerate(wrap(row.text, text_width) or [""]):
            content = (head if n == 0 else " " * lead) + piece
            lines.append(f"{v} {content.ljust(inner)} {v}")
    lines.append(f"{bl}{h * (inner + 2)}{br}")
    return lines


def render(page: Page, width: int, *, unicode: bool = True) -> str:
    """The whole help page, ending in one newline."""
    lines = ["", f" Usage: {page.usage}", ""]
    body = text_lines(page.text, width - 2)
    if body:
        lines += [f" {line}" if line else "" for line in body] + [""]
    for panel in page.panels:
        if panel.rows:
            lines += panel_lines(panel, width, UNICODE_BOX if unicode else ASCII_BOX)
    return "\n".join(lines) + "\n"


def terminal_width() -> int:
    """The width help is laid out for: $COLUMNS, else the terminal's, else 80 (a pipe, a file, a test)."""
    import shutil

    return max(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, 40)


def can_draw_boxes() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return encoding in ("utf8", "utf8sig")


def page_text(page: Page) -> str:
    """The page for this process's stdout: its width, and box characters only where the encoding has them."""
    return render(page, terminal_width(), unicode=can_draw_boxes())
