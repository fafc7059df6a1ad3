#!/usr/bin/env bash
# node 1 of 3: run on the host whose address is NODE1_ADDR
# llmctl 0.1.0 launch plan: Qwen/Qwen3-235B-A22B on 3 node(s) of 8x h100-80gb, disaggregated: 1x prefill (DP 2 x TP 4 (EP 8)), 1x decode (DP 16 x TP 1 (EP 16))
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"
: "${NODE1_ADDR:?set NODE1_ADDR to the address of node 1}"

# decode-0-rank1: decode, GPUs 0,1,2,3,4,5,6,7
CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 VLLM_NIXL_SIDE_CHANNEL_HOST="${NODE1_ADDR}" VLLM_NIXL_SIDE_CHANNEL_PORT=5600 exec vllm serve Qwen/Qwen3-235B-A22B \
  --tensor-parallel-size 1 \
  --data-parallel-size 16 \
  --data-parallel-size-local 8 \
  --data-parallel-address "${NODE0_ADDR}" \
  --data-parallel-rpc-port 13345 \
  --data-parallel-start-rank 8 \
  --enable-expert-parallel \
  --dtype bfloat16 \
  --max-model-len 5120 \
  --max-num-seqs 27 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --block-size 128 \
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}' \
  --headless
