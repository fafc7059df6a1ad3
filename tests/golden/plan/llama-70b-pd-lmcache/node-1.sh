#!/usr/bin/env bash
# node 1 of 2: run on the host whose address is NODE1_ADDR
# llmctl 0.1.0 launch plan: meta-llama/Llama-3.1-70B-Instruct on 2 node(s) of 8x h100-80gb, disaggregated: 2x prefill (TP 4 x PP 1), 1x decode (TP 4 x PP 1)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
# Export ROUTER_ADDR too: LMCache prefillers notify the proxy in router.sh at that address.
set -euo pipefail

# decode-0: decode, GPUs 0,1,2,3, HTTP :8200
CUDA_VISIBLE_DEVICES=0,1,2,3 \
  PYTHONHASHSEED=4242 \
  LMCACHE_LOCAL_CPU=False \
  LMCACHE_MAX_LOCAL_CPU_SIZE=0 \
  LMCACHE_ENABLE_PD=True \
  LMCACHE_TRANSFER_CHANNEL=nixl \
  LMCACHE_NIXL_BACKENDS=UCX \
  LMCACHE_PD_BUFFER_DEVICE=cuda \
  LMCACHE_PD_ROLE=receiver \
  LMCACHE_PD_BUFFER_SIZE=2147483648 \
  LMCACHE_PD_PEER_HOST=0.0.0.0 \
  LMCACHE_PD_PEER_INIT_PORT=7300,7301,7302,7303 \
  LMCACHE_PD_PEER_ALLOC_PORT=7400,7401,7402,7403 \
  exec vllm serve meta-llama/Llama-3.1-70B-Instruct \
  --host 0.0.0.0 \
  --port 8200 \
  --served-model-name meta-llama/Llama-3.1-70B-Instruct \
  --tensor-parallel-size 4 \
  --dtype bfloat16 \
  --max-model-len 3072 \
  --max-num-seqs 156 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_consumer","kv_connector_extra_config":{"discard_partial_chunks":false,"lmcache_rpc_port":"consumer0","skip_last_n_tokens":1}}' \
  --no-enable-prefix-caching
