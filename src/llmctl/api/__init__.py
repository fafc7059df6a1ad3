"""The core API that the CLI (and library users) call. No printing here: results are dataclasses.

Modules: `models` (resolve names, open the store, ensure a model is present), `create` (Modelfile ->
model), `package` (GGUF files -> model), `manage` (list, show, tag, rm, df, prune, verify).
"""

from llmctl.api.models import ensure_model, get_model, open_store, parse_name, stored_gguf_metadata

__all__ = ["ensure_model", "get_model", "open_store", "parse_name", "stored_gguf_metadata"]
