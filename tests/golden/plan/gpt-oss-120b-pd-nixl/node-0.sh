#!/usr/bin/env bash
# node 0 of 1: run on the host whose address is NODE0_ADDR
# llmctl 0.1.0 launch plan: openai/gpt-oss-120b on 1 node(s) of 8x h100-80gb, disaggregated: 1x prefill (TP 2 x PP 1), 1x decode (DP 2 x TP 1 (EP 2))
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"

# prefill-0: prefill, GPUs 0,1, HTTP :8100
CUDA_VISIBLE_DEVICES=0,1 VLLM_NIXL_SIDE_CHANNEL_HOST="${NODE0_ADDR}" VLLM_NIXL_SIDE_CHANNEL_PORT=5600 vllm serve openai/gpt-oss-120b \
  --host 0.0.0.0 \
  --port 8100 \
  --served-model-name openai/gpt-oss-120b \
  --tensor-parallel-size 2 \
  --enable-expert-parallel \
  --max-model-len 5120 \
  --max-num-seqs 434 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --block-size 128 \
  --no-disable-hybrid-kv-cache-manager \
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}' &
# decode-0: decode, GPUs 2,3, HTTP :8201
CUDA_VISIBLE_DEVICES=2,3 VLLM_NIXL_SIDE_CHANNEL_HOST="${NODE0_ADDR}" VLLM_NIXL_SIDE_CHANNEL_PORT=5602 vllm serve openai/gpt-oss-120b \
  --host 0.0.0.0 \
  --port 8201 \
  --served-model-name openai/gpt-oss-120b \
  --tensor-parallel-size 1 \
  --data-parallel-size 2 \
  --enable-expert-parallel \
  --max-model-len 5120 \
  --max-num-seqs 191 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --block-size 128 \
  --no-disable-hybrid-kv-cache-manager \
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}' &
wait
