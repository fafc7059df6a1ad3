#!/usr/bin/env bash
# router: the one endpoint clients use
# llmctl 0.1.0 launch plan: meta-llama/Llama-3.1-70B-Instruct on 2 node(s) of 8x h100-80gb, disaggregated: 2x prefill (TP 4 x PP 1), 1x decode (TP 4 x PP 1)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Needs `pip install vllm-router==0.1.17`; clients connect to this host on port 8000.
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"
: "${NODE1_ADDR:?set NODE1_ADDR to the address of node 1}"

# router: router, HTTP :8000
exec vllm-router \
  --policy consistent_hash \
  --vllm-pd-disaggregation \
  --kv-connector nixl \
  --prefill "http://${NODE0_ADDR}:8100" \
  --prefill "http://${NODE0_ADDR}:8101" \
  --decode "http://${NODE1_ADDR}:8200" \
  --host 0.0.0.0 \
  --port 8000
