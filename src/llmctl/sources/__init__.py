"""Where models come from: the bundled default, OCI registries, Hugging Face, Ollama-format registries."""
