#!/usr/bin/env bash
# node 0 of 2: run on the host whose address is NODE0_ADDR
# llmctl 0.1.0 launch plan: meta-llama/Llama-3.1-70B-Instruct on 2 node(s) of 8x h100-80gb, disaggregated: 2x prefill (TP 4 x PP 1), 1x decode (TP 4 x PP 1)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
# Export ROUTER_ADDR too: LMCache prefillers notify the proxy in router.sh at that address.
set -euo pipefail
: "${ROUTER_ADDR:?set ROUTER_ADDR to the address of the host that runs router.sh}"

# prefill-0: prefill, GPUs 0,1,2,3, HTTP :8100
CUDA_VISIBLE_DEVICES=0,1,2,3 \
  PYTHONHASHSEED=4242 \
  LMCACHE_LOCAL_CPU=False \
  LMCACHE_MAX_LOCAL_CPU_SIZE=0 \
  LMCACHE_ENABLE_PD=True \
  LMCACHE_TRANSFER_CHANNEL=nixl \
  LMCACHE_NIXL_BACKENDS=UCX \
  LMCACHE_PD_BUFFER_DEVICE=cuda \
  LMCACHE_PD_ROLE=sender \
  LMCACHE_PD_BUFFER_SIZE=1073741824 \
  LMCACHE_PD_PROXY_HOST="${ROUTER_ADDR}" \
  LMCACHE_PD_PROXY_PORT=7500 \
  vllm serve meta-llama/Llama-3.1-70B-Instruct \
  --host 0.0.0.0 \
  --port 8100 \
  --served-model-name meta-llama/Llama-3.1-70B-Instruct \
  --tensor-parallel-size 4 \
  --dtype bfloat16 \
  --max-model-len 3072 \
  --max-num-seqs 156 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_producer","kv_connector_extra_config":{"discard_partial_chunks":false,"lmcache_rpc_port":"producer0"}}' \
  --no-enable-prefix-caching &
# prefill-1: prefill, GPUs 4,5,6,7, HTTP :8101
CUDA_VISIBLE_DEVICES=4,5,6,7 \
  PYTHONHASHSEED=4242 \
  LMCACHE_LOCAL_CPU=False \
  LMCACHE_MAX_LOCAL_CPU_SIZE=0 \
  LMCACHE_ENABLE_PD=True \
  LMCACHE_TRANSFER_CHANNEL=nixl \
  LMCACHE_NIXL_BACKENDS=UCX \
  LMCACHE_PD_BUFFER_DEVICE=cuda \
  LMCACHE_PD_ROLE=sender \
  LMCACHE_PD_BUFFER_SIZE=1073741824 \
  LMCACHE_PD_PROXY_HOST="${ROUTER_ADDR}" \
  LMCACHE_PD_PROXY_PORT=7500 \
  vllm serve meta-llama/Llama-3.1-70B-Instruct \
  --host 0.0.0.0 \
  --port 8101 \
  --served-model-name meta-llama/Llama-3.1-70B-Instruct \
  --tensor-parallel-size 4 \
  --dtype bfloat16 \
  --max-model-len 3072 \
  --max-num-seqs 156 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_producer","kv_connector_extra_config":{"discard_partial_chunks":false,"lmcache_rpc_port":"producer1"}}' \
  --no-enable-prefix-caching &
wait
