"""`llmctl serve`: the HTTP front door, OpenAI, Anthropic and Ollama APIs in front of llama-server engines.

Like `cli/`, the server takes requests in and calls the core (`llmctl.api`, `llmctl.runtime`); nothing in
the core imports it. `app.create_app(settings, options)` builds the FastAPI app, `gateway.Gateway` is what its
routes share, `routes/` holds one module per API family, and `daemon.serve` binds the socket and runs uvicorn.
Nothing is imported here, so `import llmctl.server.errors` does not start FastAPI.
"""
