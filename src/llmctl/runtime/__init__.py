"""The local runtime: llama-server discovery and builds, engine processes, prompts, and the scheduler.

Modules: `engine` (find llama-server), `build` (`llmctl runtime install`), `cpu` (CPU features, AMX, nvcc),
`gpu` (NVIDIA probing, the one GPU probe; layer-offload planning), `launch` (engine options and the
llama-server command line), `process` (one llama-server child), `prompt` (+ `gotemplate`: messages to
llama-server requests), `inproc` (llama-cpp-python fallback), `scheduler` (which engines run, for the
gateway). The front doors build on these: `llmctl.server` (the gateway) and `llmctl.cli` (`run` and its
chat). Nothing here imports `llmctl.api`, `llmctl.cli` or `llmctl.server` (tests/test_layering.py).
Imports stay lazy: nothing heavy loads here.
"""
