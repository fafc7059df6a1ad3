"""What `list`, `show` and `ps` do and print, with nothing heavier than the core they call.

Scripts call these three in loops, so they run from two front doors: the typer commands (`cli/list.py`,
`cli/show.py`, `cli/ps.py`) and the fast dispatcher (`cli/fast.py`), which skips typer, pydantic and rich.
Both call the functions here, so their output is the same bytes; tests/test_cli_fast.py checks it.

Tables are fixed columns three spaces apart that never wrap, as `ollama list` and `ollama ps` print them,
so `cut`/`awk` work at any terminal width. Text that came from a model (a system prompt, a license, a
name from a registry) is printed with control characters made visible: a hostile artifact must not be
able to drive the terminal that shows it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Sequence

from llmctl.cli.render import human_ago, human_size, print_json
from llmctl.settings import Settings

COLUMN_GAP = "   "
_VISIBLE = {c: "\N{REPLACEMENT CHARACTER}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]}


def visible(text: str) -> str:
    """`text` with every control character but tab and newline replaced by U+FFFD."""
    return text.translate(_VISIBLE)


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns, each as wide as its widest cell; no trailing spaces."""
    lines = [list(header)] + [[visible(cell) for cell in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "".join(COLUMN_GAP.join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n" for line in lines)


# -- list ------------------------------------------------------------------------------------------------

def list_models(settings: Settings, *, json_: bool, quiet: bool) -> None:
    from llmctl.api.manage import list_models as listed

    models = listed(settings)
    if json_:
        print_json([m.to_json() for m in models])
    elif quiet:
        out("".join(f"{visible(m.name)}\n" for m in models))
    else:
        now = time.time()
        out(table(("NAME", "ID", "SIZE", "MODIFIED"),
                  [(m.name, m.id, human_size(m.size), human_ago(m.modified, now)) for m in models]))


# -- show ------------------------------------------------------------------------------------------------

def show_model(settings: Settings, name: str, *, modelfile: bool, json_: bool, license: bool) -> None:
    from llmctl.api import manage

    model = manage.show(settings, name)
    if modelfile:  # a file to redirect and re-create from: exact bytes, unless a terminal shows it
        text = manage.modelfile_text(settings, model)
        out(visible(text) if sys.stdout.isatty() else text)
    elif json_:
        print_json(manage.show_json(settings, model))
    elif license:
        text = "\n\n".join(model.licenses)
        text += "" if text.endswith("\n") else "\n"
        out(visible(text) if sys.stdout.isatty() else text)
    else:
        out(show_text(manage.show_json(settings, model), model))


def show_text(data: dict[str, Any], model: Any) -> str:
    """Ollama's `show` layout: sections of label/value pairs, each value on one line."""
    lines = ["  Model"]
    for label, key in (("architecture", "architecture"), ("parameters", "parameters"),
                       ("quantization", "quantization"), ("context length", "context_length"), ("format", "format")):
        if data[key] is not None:
            lines.append(f"    {label:<16}{data[key]}")
    lines.append(f"    {'size':<16}{human_size(data['size'])}")
    lines.append(f"    {'id':<16}{data['id']}")
    if model.adapters:
        lines.append(f"    {'adapters':<16}{len(model.adapters)}")
    if model.parameters:
        lines += ["", "  Parameters"]
        for k, v in sorted(model.parameters.items()):
            for item in v if isinstance(v, list) else [v]:
                lines.append(f"    {k:<16}{item!r}" if isinstance(item, str) else f"    {k:<16}{item}")
    if model.system:
        lines += ["", "  System", "    " + model.system.strip().replace("\n", "\n    ")]
    if model.messages:
        lines += ["", "  Messages"] + [f"    {m.role:<10}{m.content.strip()[:70]}" for m in model.messages]
    if model.licenses:
        lines += ["", "  License"]
        for text in model.licenses:
            first = text.strip().splitlines()[0] if text.strip() else ""
            lines.append(f"    {first[:76]}")
    return visible("\n".join(lines)) + "\n"


# -- ps --------------------------------------------------------------------------------------------------

def loaded_models(settings: Settings, *, json_: bool, api_key: str | None) -> None:
    from llmctl.api.serve import Client, ps

    with Client(settings, api_key=api_key) as client:
        rows = ps(client)
    if json_:
        print_json([r.to_json() for r in rows])
        return
    now = time.time()
    out(table(("NAME", "ID", "SIZE", "PROCESSOR", "UNTIL", "PORT"), [
        (r.name if r.mode == "generate" else f"{r.name} ({r.mode})", r.id, human_size(r.size), r.processor,
         human_until(r.expires_at, r.forever, now), str(r.port or "-"))
        for r in rows
    ]))


def human_until(expires_at: str, forever: bool, now: float | None = None) -> str:
    """Ollama's UNTIL column: "4 minutes from now", "Forever", "Stopping...". """
    if forever:
        return "Forever"
    from datetime import datetime

    try:
        ts = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "-"
    delta = ts - (now or time.time())
    if delta <= 0:
        return "Stopping..."
    return f"{human_duration(delta)} from now"


def human_duration(seconds: float) -> str:
    """Ollama's format.humanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 730:
        return f"{hours // 24 // 30} months"
    return f"{s // 86400 // 365} years"
