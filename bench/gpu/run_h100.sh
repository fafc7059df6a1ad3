#!/usr/bin/env bash
# One device call on an NVIDIA GPU machine (no package registry there): build llama.cpp with CUDA, write a
# llama-shaped 8B and a ~1B GGUF with random weights in Q4_K_M, then measure `llmctl serve` against raw
# llama-server (bench/serve.py --gpu: same build, model and slots; rounds interleaved): the 8B at 1/4/16/64
# streams and the 1B at 64 streams (fast enough to stress the gateway), with the gateway's CPU per token.
#
# Needs in the tree .gpu/llama.cpp and .whl/ (git-ignored; `bash bench/gpu/prepare.sh` makes both here):
#   run(command="bash bench/gpu/run_h100.sh", carry=[".gpu", ".whl"])
# Logs and results go to $OUT as they are written (run.log, build.log, serve-8b.txt/.json, serve-1b.txt/.json:
# 6 files, as the device returns at most 8), so a run cut short keeps what it measured. Build and models go to
# $HOME/gpubuild and $HOME/gpumodels: a second call on the still-warm machine skips them. Environment:
#   STEPS   steps to run (default "build model serve8b serve1b"; also: bench, test, auto, multi (2+ GPUs))
#   ROUNDS  rounds per serving benchmark (default 10)
#   STREAMS8 (default 1,4,16,64), REQUESTS8 (1), REQUESTS1 (2): the 8B's stream counts, and requests per stream
#           per round for the 8B and the 1B (more requests make a round longer, so the engine's first-batch
#           TTFT, which swings 0.2-0.6 s between rounds for raw and llmctl alike, weighs less in its tok/s)
#   BUDGET  seconds the whole script may take (default 530: done inside 9 minutes; serving runs are cut short,
#           with what they measured kept, rather than the call)
#   GPU=0   the CPU-side rehearsal on a machine without a GPU: no CUDA build (the llama-server llmctl finds),
#           tiny models of the same kinds, 2 rounds, few tokens; exercises every step but the build.
set -euo pipefail
T0=$(date +%s); BUDGET=${BUDGET:-530}; ROUNDS=${ROUNDS:-10}; GPU=${GPU:-1}
STEPS=${STEPS:-"build model serve8b serve1b"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$ROOT"
OUT=${OUT:-$ROOT/gpu-out}; mkdir -p "$OUT"
B=${GPUBUILD:-$HOME/gpubuild}; M=${GPUMODELS:-$HOME/gpumodels}; mkdir -p "$M"
SRC=$ROOT/.gpu/llama.cpp; VOCAB=$SRC/models/ggml-vocab-llama-spm.gguf
exec > >(tee -a "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
[ -f "$VOCAB" ] || { say "missing $VOCAB: run bash bench/gpu/prepare.sh here and carry .gpu"; exit 1; }

if [ "$GPU" = 1 ]; then
  PY=python3
  if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/typer ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  fi
  export PYTHONPATH=$ROOT/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  export PATH=$B/bin:$PATH  # llmctl finds the CUDA llama-server on PATH, for raw and gateway alike
  nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv
  nvcc --version | tail -1; cmake --version | head -1
  # the 8B: Llama-3-8B's shape; the "1B": Llama-3.2-1B's (2048 / 16 layers / 32 heads / 8 KV / 8192), both with
  # the 32k SPM vocabulary
  SHAPE8=(4096 32 32 8 14336); SHAPE1=(2048 16 32 8 8192)
  SERVE=(--gpu --parallel 64 --ctx-size 2048 --max-tokens 96 --rounds "$ROUNDS" --pause 0.3 --ttft-probes 20 --goal 0.99)
else
  PY=${PY:-$ROOT/.venv/bin/python}
  SHAPE8=(256 2 4 2 512); SHAPE1=(256 1 4 2 256)
  SERVE=(--parallel 4 --ctx-size 512 --max-tokens 8 --rounds "${ROUNDS_CPU:-2}" --pause 0.1 --ttft-probes 2 --goal 0.99)
fi
echo "cores: $(nproc); $($PY --version 2>&1); steps: $STEPS; rounds: $ROUNDS; GPU=$GPU"

BUILD_PID=""
if [ "$GPU" = 1 ] && want build && [ ! -x "$B/bin/llama-server" ]; then
  ARCH=$($PY -c "from llmctl.runtime import gpu; print(gpu.cuda_archs(gpu.query_gpus()) or 90)" || echo 90)
  say "CUDA build for architectures $ARCH (log: $OUT/build.log)"
  ( s=$(date +%s)
    cmake -S "$SRC" -B "$B" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 &&
    cmake --build "$B" --target llama-server llama-bench -j "$(nproc)" >> "$OUT/build.log" 2>&1
    echo "[build] rc=$? in $(( $(date +%s) - s )) s" ) &
  BUILD_PID=$!
fi
if want model; then
  for spec in "l8b-q4km.gguf ${SHAPE8[*]}" "l1b-q4km.gguf ${SHAPE1[*]}"; do
    set -- $spec; name=$1; shift
    if [ ! -f "$M/$name" ]; then
      s=$(date +%s)
      PYTHONPATH=$SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH} $PY bench/gpu/gen_model.py "$M/$name.tmp" "$VOCAB" "$@" q4_k_m
      mv "$M/$name.tmp" "$M/$name"; say "model $name ($*) in $(( $(date +%s) - s )) s"
    fi
  done
  ls -la "$M"
fi
if [ -n "$BUILD_PID" ]; then
  wait "$BUILD_PID" || true
  tail -3 "$OUT/build.log"
  [ -x "$B/bin/llama-server" ] || { say "no llama-server was built"; tail -40 "$OUT/build.log"; exit 1; }
fi
$PY -m llmctl runtime list 2>&1
say "left: $(left) s"

if want bench && [ "$GPU" = 1 ] && [ "$(left)" -gt 240 ]; then
  say "llama-bench tg128 (the engine alone)"
  timeout 60 "$B/bin/llama-bench" -m "$M/l8b-q4km.gguf" -ngl 99 -p 0 -n 128 -r 2 2>&1 | tee "$OUT/llama-bench.txt" | tail -4 || true
fi
serve() {  # serve NAME GGUF MODEL STREAMS [extra serve.py args]: bench/serve.py, cut short by the budget
  local name=$1 gguf=$2 model=$3 streams=$4; shift 4
  local limit=$(( $(left) - 25 ))
  [ "$limit" -gt 60 ] || { say "skipping $name: $(left) s left"; return 0; }
  say "$name: bench/serve.py --streams $streams (limit $limit s; $OUT/$name.txt)"
  timeout -s TERM "$limit" $PY bench/serve.py "${SERVE[@]}" --gguf "$gguf" --model "$model" --no-peer \
    --streams "$streams" --no-write --json "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.txt" || say "$name ended early"
}
want serve8b && serve serve-8b "$M/l8b-q4km.gguf" random-llama-8b:q4_k_m "${STREAMS8:-1,4,16,64}" --requests "${REQUESTS8:-1}"
want serve1b && serve serve-1b "$M/l1b-q4km.gguf" random-llama-1b:q4_k_m 64 --requests "${REQUESTS1:-2}"

if want test && [ "$GPU" = 1 ] && [ "$(left)" -gt 40 ]; then
  say "pytest tests/test_gpu.py -m gpu"
  LLMCTL_GPU_TEST_GGUF=$M/l8b-q4km.gguf timeout $(( $(left) - 10 )) $PY -m pytest tests/test_gpu.py -m gpu -q \
    -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt" | tail -5 || true
fi
if want auto && [ "$GPU" = 1 ] && [ "$(left)" -gt 45 ]; then
  say "automatic offload: llmctl serve without --gpu-layers, llmctl ps"
  ( export LLMCTL_HOME=$HOME/llmctl-home LLMCTL_HOST=127.0.0.1:18200
    $PY -m llmctl package --gguf "$M/l8b-q4km.gguf" random-llama-8b:q4_k_m -q > /dev/null
    $PY -m llmctl serve --parallel 4 > "$OUT/serve-auto.log" 2>&1 & GW=$!
    for _ in $(seq 60); do curl -sf 127.0.0.1:18200/ >/dev/null && break; sleep 0.5; done
    curl -s 127.0.0.1:18200/api/generate -d '{"model":"random-llama-8b:q4_k_m"}'; echo
    $PY -m llmctl ps; kill -INT $GW; wait $GW ) 2>&1 | tee "$OUT/auto.txt" || true
fi
if want multi && [ "$GPU" = 1 ] && [ "$(left)" -gt 60 ]; then
  say "several GPUs: pytest tests/test_gpu_multi.py -m gpu"
  LLMCTL_GPU_TEST_GGUF=$M/l8b-q4km.gguf timeout $(( $(left) - 10 )) $PY -m pytest tests/test_gpu_multi.py -m gpu -q \
    -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu-multi.txt" | tail -8 || true
fi
say "done"
