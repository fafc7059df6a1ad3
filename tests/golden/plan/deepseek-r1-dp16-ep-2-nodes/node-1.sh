#!/usr/bin/env bash
# node 1 of 2: run on the host whose address is NODE1_ADDR
# llmctl 0.1.0 launch plan: deepseek-ai/DeepSeek-R1 on 2 node(s) of 8x h100-80gb, aggregated: 1x serve (DP 16 x TP 1 (EP 16))
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"

# serve-0-rank1: serve, GPUs 0,1,2,3,4,5,6,7
CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 exec vllm serve deepseek-ai/DeepSeek-R1 \
  --tensor-parallel-size 1 \
  --data-parallel-size 16 \
  --data-parallel-size-local 8 \
  --data-parallel-address "${NODE0_ADDR}" \
  --data-parallel-rpc-port 13345 \
  --data-parallel-start-rank 8 \
  --enable-expert-parallel \
  --max-model-len 3072 \
  --max-num-seqs 53 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --headless
