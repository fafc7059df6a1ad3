#!/usr/bin/env bash
# node 0 of 1: run on the host whose address is NODE0_ADDR
# llmctl 0.1.0 launch plan: openai/gpt-oss-120b on 1 node(s) of 8x h100-80gb, aggregated: 1x serve (TP 1 x PP 1)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
set -euo pipefail

# serve-0: serve, GPUs 0, HTTP :8000
CUDA_VISIBLE_DEVICES=0 exec vllm serve openai/gpt-oss-120b \
  --host 0.0.0.0 \
  --port 8000 \
  --served-model-name openai/gpt-oss-120b \
  --tensor-parallel-size 1 \
  --max-model-len 3072 \
  --max-num-seqs 74 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90
