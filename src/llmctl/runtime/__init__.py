"""The local runtime: llama-server discovery and builds, engine processes, prompts, `run` and its chat.

Modules: `engine` (find llama-server), `build` (`llmctl runtime install`), `cpu` (CPU features, AMX, GPUs,
nvcc), `gpu` (NVIDIA probing, layer-offload planning), `launch` (engine options and the llama-server command
line), `process` (one llama-server child), `prompt` (+ `gotemplate`: messages to llama-server requests),
`inproc` (llama-cpp-python fallback), `client` (a running `llmctl serve`), `chat` (the REPL). The gateway
(`runtime.gateway`, `runtime.scheduler`) builds on these. Imports stay lazy: nothing heavy loads here.
"""
