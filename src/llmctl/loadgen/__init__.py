"""A load generator for OpenAI-compatible endpoints (`llmctl bench`): llmctl serve, llama-server, vLLM, SGLang.

One asyncio loop drives every request over raw HTTP/1.1 streams (`http`), reads server-sent events
(`sse`), and times each content chunk (`client`). `workload` draws ISL/OSL and arrival times as vLLM's
random dataset and `vllm bench serve` do; `prompts` builds prompts of a given token length against the
endpoint's own tokenizer; `metrics` turns request records into vLLM's numbers; `profile` into measured
prefill and decode speeds for `llmctl plan --profile`; `svg` draws the latency-throughput curve.
Nothing here prints or reads the environment: the API layer (`llmctl.api.bench`) orchestrates.
"""
