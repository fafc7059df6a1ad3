#!/usr/bin/env bash
# Prepare, on this machine (which has the package registries), what bench/gpu/run_h100.sh needs on the GPU
# machine (which has none), in two git-ignored folders that the device call carries:
#   .gpu/llama.cpp  the llama.cpp that llama-cpp-python 0.3.36's sdist vendors (the engine llmctl pins), pruned
#                   to what a CUDA build of llama-server/llama-bench/llama-quantize and gen_model.py need (~40 MB)
#   .whl/           cp312 wheels of llmctl's Python dependencies (bench/gpu/wheels.sh)
# Idempotent: each folder is made only if missing. Run from anywhere; ~30 s with a warm pip cache.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}; [ -x "$PY" ] || PY=python3
if [ ! -f .gpu/llama.cpp/CMakeLists.txt ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation llama-cpp-python==0.3.36 -d "$tmp" 2>/dev/null ||
    "$PY" -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$tmp"
  tar -xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp"
  src=$tmp/llama_cpp_python-0.3.36/vendor/llama.cpp
  keep=$tmp/ggml-vocab-llama-spm.gguf; cp "$src/models/ggml-vocab-llama-spm.gguf" "$keep"
  rm -rf "$src"/{models,docs,tests,benches,media,examples,.devops,.github}
  for b in "$src"/ggml/src/ggml-*/; do
    case "$(basename "$b")" in ggml-cpu|ggml-cuda|ggml-blas) ;; *) rm -rf "$b" ;; esac
  done
  mkdir -p "$src/models" .gpu && mv "$keep" "$src/models/" && rm -rf .gpu/llama.cpp && mv "$src" .gpu/llama.cpp
fi
[ -n "$(ls .whl/*.whl 2>/dev/null)" ] || bash bench/gpu/wheels.sh
du -sh .gpu .whl
