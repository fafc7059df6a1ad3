#!/usr/bin/env bash
# router: the one endpoint clients use
# llmctl 0.1.0 launch plan: meta-llama/Llama-3.1-70B-Instruct on 2 node(s) of 8x h100-80gb, disaggregated: 2x prefill (TP 4 x PP 1), 1x decode (TP 4 x PP 1)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# LMCache's P/D proxy: needs disagg_proxy_server.py from vLLM v0.33.0 (examples/others/lmcache/disagg_prefill_lmcache_v1/) in the working directory and `pip install lmcache`; clients connect to this host on port 8000, prefillers report to port 7500.
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"
: "${NODE1_ADDR:?set NODE1_ADDR to the address of node 1}"

# router: router, HTTP :8000
exec python3 disagg_proxy_server.py \
  --host 0.0.0.0 \
  --port 8000 \
  --prefiller-host "${NODE0_ADDR},${NODE0_ADDR}" \
  --prefiller-port 8100,8101 \
  --num-prefillers 2 \
  --decoder-host "${NODE1_ADDR}" \
  --decoder-port 8200 \
  --num-decoders 1 \
  --decoder-init-port 7300,7301,7302,7303 \
  --decoder-alloc-port 7400,7401,7402,7403 \
  --proxy-host 0.0.0.0 \
  --proxy-port 7500
