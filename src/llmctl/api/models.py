"""Names to stored models: parse with the configured defaults, find in the store, fetch when missing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmctl.errors import LlmctlError, NotFound
from llmctl.names import is_loopback, parse_name, short
from llmctl.oci.layout import Store
from llmctl.oci.reference import Reference
from llmctl.progress import Progress
from llmctl.settings import Settings

if TYPE_CHECKING:  # the GGUF reader (numpy) behind artifact/ costs 0.2 s: `pull` and `push` open stores without it
    from llmctl.artifact.model import Model

__all__ = ["ensure_model", "get_model", "open_store", "parse_name", "short", "stored_gguf_metadata"]


def open_store(settings: Settings) -> Store:
    """The store of this LLMCTL_HOME, created on first use. The one place settings become a `Store`."""
    return Store(settings.store_dir).init()


def get_model(settings: Settings, name: str | Reference, progress: Progress | None = None) -> Model:
    """A stored model; the bundled default is installed on first use (offline). Never touches the network."""
    from llmctl.artifact.model import load
    from llmctl.sources import bundled

    store = open_store(settings)
    ref = name if isinstance(name, Reference) else parse_name(settings, name)
    try:
        return load(store, ref)
    except NotFound:
        if bundled.is_bundled(ref, settings.registry, settings.namespace):
            bundled.install(store, [ref], progress)
            return load(store, ref)
        raise NotFound(
            f"model {short(settings, ref)!r} not found", hint="`llmctl list` shows stored models; `llmctl pull` fetches one"
        ) from None


def ensure_model(settings: Settings, name: str | Reference, progress: Progress | None = None) -> Model:
    """Like `get_model`, but pulls a missing model from its registry first, as `ollama run` does."""
    try:
        return get_model(settings, name, progress)
    except NotFound:
        ref = name if isinstance(name, Reference) else parse_name(settings, name)
        if settings.offline and not is_loopback(ref.registry):
            raise NotFound(
                f"model {short(settings, ref)!r} not found locally, and LLMCTL_OFFLINE is set: not pulling from {ref.registry}"
            ) from None
        from llmctl.api.pull import pull  # the registry layer; imported late, it brings httpx

        try:
            # the name as typed: a Hugging Face repo id keeps its capitals for the Hub
            pull(settings, name if isinstance(name, str) else str(ref), progress=progress)
        except LlmctlError as exc:
            raise type(exc)(f"model {short(settings, ref)!r} not found locally, and pulling it failed: {exc}") from None
        return get_model(settings, ref, progress)


def stored_gguf_metadata(settings: Settings, name: str, *, pull: bool = True) -> tuple[dict[str, Any], int]:
    """GGUF key/values and parameter count of a stored model's weights (used by `plan`)."""
    from llmctl.artifact.gguf_meta import read_gguf

    model = ensure_model(settings, name) if pull else get_model(settings, name)
    infos = [read_gguf(p) for p in model.weights]
    return dict(infos[0].kv), sum(i.parameter_count for i in infos)
