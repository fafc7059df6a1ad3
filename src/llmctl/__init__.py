"""llmctl: local LLMs as OCI artifacts, served by llama.cpp; multi-node launch plans for vLLM/SGLang."""

__version__ = "0.1.0"
