#!/usr/bin/env bash
# node 1 of 2: run on the host whose address is NODE1_ADDR
# llmctl 0.1.0 launch plan: meta-llama/Llama-3.1-405B-Instruct on 2 node(s) of 8x h100-80gb, aggregated: 1x serve (TP 8 x PP 2)
# vllm 0.33.0; every flag checked against the pinned flag list before printing
# Export NODE<n>_ADDR for every node before running (addresses the nodes reach each other at).
set -euo pipefail
: "${NODE0_ADDR:?set NODE0_ADDR to the address of node 0}"

# serve-0-rank1: serve, GPUs 0,1,2,3,4,5,6,7
CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 exec vllm serve meta-llama/Llama-3.1-405B-Instruct \
  --tensor-parallel-size 8 \
  --pipeline-parallel-size 2 \
  --dtype bfloat16 \
  --max-model-len 3072 \
  --max-num-seqs 239 \
  --max-num-batched-tokens 8192 \
  --gpu-memory-utilization 0.90 \
  --distributed-executor-backend mp \
  --nnodes 2 \
  --node-rank 1 \
  --master-addr "${NODE0_ADDR}" \
  --master-port 29500 \
  --headless
