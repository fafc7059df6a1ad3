"""Runtime fixtures (a real llama-server on the real Gemma model)."""
