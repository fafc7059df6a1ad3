"""The core API that the CLI (and library users) call. No printing here: results are dataclasses.

Modules: `models` (resolve names, open the store, ensure a model is present), `create` (Modelfile ->
model), `package` (GGUF files or a safetensors folder -> model), `export` (model -> folder), `manage` (list,
show, tag, rm, df, prune, verify), `pull`, `push`, `login`, `run`, `plan` (with
`plan_model`, `plan_artifact`: the I/O of `llmctl plan`, so `llmctl.plan` stays pure), `serve` (ps, load, unload, status, logs of
a running gateway), `client` (the HTTP client for a gateway), `gateway` (where a running gateway is: its state
file, logs). The core is called by the two front doors, `llmctl.cli` and `llmctl.server`, and imports neither.
Names are loaded on first use: `import llmctl.api.pull` must not drag
in the GGUF reader and numpy, which cost a pull 0.15 s and 14 MB of RSS.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ensure_model": "llmctl.api.models",
    "get_model": "llmctl.api.models",
    "open_store": "llmctl.api.models",
    "parse_name": "llmctl.api.models",
    "stored_gguf_metadata": "llmctl.api.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmctl.api' has no attribute {name!r}")
