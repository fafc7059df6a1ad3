#!/usr/bin/env bash
# router: the one endpoint clients use
# llmctl 0.1.0 launch plan: Qwen/Qwen3-235B-A22B on 3 node(s) of 8x h100-80gb, disaggregated: 1x prefill (DP 2 x TP 4 (EP 8)), 1x decode (DP 16 x TP 1 (EP 16))
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Needs `pip install vllm-router==0.1.17`; clients connect to this host on port 8000.
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"
: "${NODE2_ADDR:?set NODE2_ADDR to the address of node 2}"

# router: router, HTTP :8000
exec vllm-router \
  --policy consistent_hash \
  --vllm-pd-disaggregation \
  --kv-connector nixl \
  --prefill "http://${NODE2_ADDR}:8100" \
  --decode "http://${NODE0_ADDR}:8200" \
  --host 0.0.0.0 \
  --port 8000
