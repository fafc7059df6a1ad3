"""The `llmctl serve` gateway: OpenAI and Ollama APIs in front of llama-server engines.

`create_app(settings, options)` builds the FastAPI app; `llmctl.runtime.daemon.serve` runs it.
"""

from llmctl.runtime.gateway.app import Gateway, GatewayOptions, create_app

__all__ = ["Gateway", "GatewayOptions", "create_app"]
