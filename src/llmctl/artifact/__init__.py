"""Model artifacts: GGUF metadata, building manifests and configs, loading stored models back."""
