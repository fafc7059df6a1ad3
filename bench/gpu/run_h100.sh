#!/usr/bin/env bash
# One device call on an NVIDIA GPU machine (no package registry): build llama.cpp with CUDA, generate a
# llama-shaped 8B GGUF with random weights and quantize it, then measure raw llama-server against
# `llmctl serve` (bench/serve.py --gpu, same build, model and slots), and run `pytest -m gpu`.
#
# Needs in the tree: .gpu/llama.cpp (the pruned llama.cpp of llama-cpp-python 0.3.36) and .whl/ (cp312 wheels
# of llmctl's Python dependencies: bench/gpu/wheels.sh), both git-ignored and named in the device call's `carry`:
#   run(command="bash bench/gpu/run_h100.sh", carry=[".gpu", ".whl"])
# Build and models go to $HOME/gpubuild and $HOME/gpumodels, so a second call on the still-warm machine
# skips them. STEPS="build model bench serve test" picks steps; BUDGET (s) stops the run before the call's limit.
set -uo pipefail
T0=$(date +%s); BUDGET=${BUDGET:-560}
STEPS=${STEPS:-"build model bench serve test auto"}  # "multi": the several-GPU checks (2+ GPUs)
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$ROOT"
OUT=${OUT:-$ROOT/gpu-out}; mkdir -p "$OUT"
B=$HOME/gpubuild; M=$HOME/gpumodels; L=$HOME/gpulogs; mkdir -p "$M" "$L"  # $OUT keeps 8 files at most
SRC=$ROOT/.gpu/llama.cpp; GGUF=$M/l8b-q4km.gguf
export PYTHONUNBUFFERED=1
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }

if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/typer ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=$ROOT/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PATH=$B/bin:$PATH  # the CUDA llama-server is found on PATH by llmctl's discovery (raw and gateway alike)

nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv | tee "$OUT/gpu.txt"
nvcc --version | tail -2; cmake --version | head -1; nproc; python3 --version
ARCH=$(python3 -c "from llmctl.runtime import gpu; print(gpu.cuda_archs(gpu.query_gpus()) or 90)") || ARCH=90
say "CUDA architectures from nvidia-smi compute_cap: $ARCH"

if want build && [ ! -x $B/bin/llama-quantize ]; then
  ( s=$(date +%s)
    cmake -S "$SRC" -B $B -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
      -DCMAKE_BUILD_TYPE=Release > "$L/cmake.log" 2>&1 &&
    cmake --build $B --target llama-server llama-bench llama-quantize -j "$(nproc)" > "$L/build.log" 2>&1
    echo "build rc=$? in $(( $(date +%s) - s )) s" ) &
  BUILD=$!
else BUILD=""; fi
if want model && [ ! -f $M/l8b-f16.gguf ] && [ ! -f $GGUF ]; then
  ( s=$(date +%s); PYTHONPATH=$SRC/gguf-py:$PYTHONPATH python3 bench/gpu/gen_model.py $M/l8b-f16.gguf $SRC/models/ggml-vocab-llama-spm.gguf 4096 32 32 8 14336 > "$L/gen.log" 2>&1
    echo "f16 model rc=$? in $(( $(date +%s) - s )) s" ) &
  GEN=$!
else GEN=""; fi
[ -n "$BUILD" ] && { wait $BUILD; tail -3 "$L/build.log"; }
[ -n "$GEN" ] && { wait $GEN; tail -2 "$L/gen.log"; }
[ -x $B/bin/llama-server ] || { say "no llama-server built"; tail -n 30 "$L/cmake.log" "$L/build.log"; exit 1; }
if want model && [ ! -f $GGUF ]; then
  s=$(date +%s); $B/bin/llama-quantize $M/l8b-f16.gguf $GGUF Q4_K_M "$(nproc)" > "$L/quant.log" 2>&1
  say "quantize rc=$? in $(( $(date +%s) - s )) s"; rm -f $M/l8b-f16.gguf
fi
ls -la $M; $B/bin/llama-server --version 2>&1 | tail -2
say "left: $(left) s"

if want bench && [ "$(left)" -gt 200 ]; then
  say "llama-bench"
  timeout 60 $B/bin/llama-bench -m $GGUF -ngl 99 -p 512 -n 128 -r 3 2>&1 | tee "$OUT/llama-bench.txt" | tail -5
fi
if want serve && [ "$(left)" -gt 90 ]; then
  say "bench/serve.py --gpu (raw llama-server vs llmctl serve)"
  python3 -m llmctl runtime list 2>&1 | tee "$OUT/runtime-list.txt"
  timeout $(( $(left) - 60 )) python3 bench/serve.py --gpu --gguf $GGUF --model random-llama-8b:q4_k_m --no-peer \
    --streams 1,4,16 --parallel 16 --ctx-size 2048 --rounds ${ROUNDS:-5} --requests 2 --max-tokens 96 \
    --no-write --json "$OUT/serve.json" 2>&1 | tee "$OUT/serve.txt"
fi
if want test && [ "$(left)" -gt 30 ]; then
  say "pytest -m gpu"
  LLMCTL_GPU_TEST_GGUF=$GGUF timeout $(( $(left) - 5 )) python3 -m pytest tests/test_gpu.py -m gpu -v -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt" | tail -25
fi
if want auto && [ "$(left)" -gt 45 ]; then
  say "automatic offload: llmctl run --verbose, then llmctl serve without --gpu-layers and llmctl ps"
  ( export LLMCTL_HOME=$HOME/llmctl-home LLMCTL_HOST=127.0.0.1:18200
    python3 -m llmctl package --gguf $GGUF random-llama-8b:q4_k_m > /dev/null || exit 1
    timeout 90 python3 -m llmctl run random-llama-8b:q4_k_m "Once upon a time" --backend llama-server --verbose \
      --param num_predict=16 2>&1 | tail -6
    timeout 90 python3 -m llmctl run random-llama-8b:q4_k_m "Once upon a time" --backend llama-server --num-gpu 8 \
      --param num_predict=8 > /dev/null 2>&1
    grep -ho -- " -ngl [0-9]*" $LLMCTL_HOME/logs/engine-*.log
    python3 -m llmctl serve --parallel 4 > $HOME/gpulogs/serve-auto.log 2>&1 & GW=$!
    for i in $(seq 60); do curl -sf 127.0.0.1:18200/ >/dev/null && break; sleep 0.5; done
    curl -s 127.0.0.1:18200/api/generate -d '{"model":"random-llama-8b:q4_k_m"}'; echo
    python3 -m llmctl ps; kill -INT $GW; wait $GW
    grep -ho -- " -ngl [0-9]*" $LLMCTL_HOME/logs/engine-*.log | tail -1 ) 2>&1 | tee "$OUT/auto.txt"
fi
if want multi && [ "$(left)" -gt 60 ]; then
  say "several GPUs: pytest tests/test_gpu_multi.py, then llmctl serve --gpus 0,1 --split-mode tensor and llmctl ps"
  LLMCTL_GPU_TEST_GGUF=$GGUF timeout $(( $(left) - 40 )) python3 -m pytest tests/test_gpu_multi.py -m gpu -v \
    -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu-multi.txt" | tail -12
  ( export LLMCTL_HOME=$HOME/llmctl-home LLMCTL_HOST=127.0.0.1:18201
    python3 -m llmctl package --gguf $GGUF random-llama-8b:q4_k_m -q > /dev/null || exit 1
    python3 -m llmctl serve --parallel 4 --gpus 0,1 --split-mode tensor --tensor-split 1,1 > $L/serve-multi.log 2>&1 & GW=$!
    for i in $(seq 60); do curl -sf 127.0.0.1:18201/ >/dev/null && break; sleep 0.5; done
    curl -s 127.0.0.1:18201/api/generate -d '{"model":"random-llama-8b:q4_k_m","prompt":"Once upon a time","stream":false,"options":{"num_predict":16}}' | head -c 300; echo
    python3 -m llmctl ps
    nvidia-smi --query-gpu=index,memory.used --format=csv
    grep -ho -- " --split-mode [a-z]* --tensor-split [0-9,.]*" $LLMCTL_HOME/logs/engine-*.log | tail -1
    kill -INT $GW; wait $GW ) 2>&1 | tee "$OUT/multi-cli.txt"
fi
say "done"
