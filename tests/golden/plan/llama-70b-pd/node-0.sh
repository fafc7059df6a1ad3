#!/usr/bin/env bash
# node 0 of 2: run on the host whose address is NODE0_ADDR
# llmctl 0.1.0 launch plan: meta-llama/Llama-3.1-70B-Instruct on 2 node(s) of 8x h100-80gb, disaggregated: 2x prefill (TP 4 x PP 1), 1x decode (TP 4 x PP 1)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"

# prefill-0: prefill, GPUs 0,1,2,3, HTTP :8100
CUDA_VISIBLE_DEVICES=0,1,2,3 VLLM_NIXL_SIDE_CHANNEL_HOST="${NODE0_ADDR}" VLLM_NIXL_SIDE_CHANNEL_PORT=5600 vllm serve meta-llama/Llama-3.1-70B-Instruct \
  --host 0.0.0.0 \
  --port 8100 \
  --served-model-name meta-llama/Llama-3.1-70B-Instruct \
  --tensor-parallel-size 4 \
  --dtype bfloat16 \
  --max-model-len 3072 \
  --max-num-seqs 156 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --block-size 128 \
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}' &
# prefill-1: prefill, GPUs 4,5,6,7, HTTP :8101
CUDA_VISIBLE_DEVICES=4,5,6,7 VLLM_NIXL_SIDE_CHANNEL_HOST="${NODE0_ADDR}" VLLM_NIXL_SIDE_CHANNEL_PORT=5604 vllm serve meta-llama/Llama-3.1-70B-Instruct \
  --host 0.0.0.0 \
  --port 8101 \
  --served-model-name meta-llama/Llama-3.1-70B-Instruct \
  --tensor-parallel-size 4 \
  --dtype bfloat16 \
  --max-model-len 3072 \
  --max-num-seqs 156 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --block-size 128 \
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}' &
wait
