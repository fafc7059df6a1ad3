#!/usr/bin/env bash
# Installs llmctl into .venv in this repository, with llama-server, in one build.
#
#   bash scripts/install.sh && .venv/bin/llmctl run gemma3:270m "Why is the sky blue?"
#
# - creates .venv if it is missing (Python >= 3.11: $PYTHON, else python3.13 .. python3.11, python3);
# - upgrades pip, then `pip install -e .` with CMAKE_ARGS that make the llama-cpp-python build also build
#   and install llama-server (into <site-packages>/bin, its libraries into <site-packages>/lib), with AMX
#   instructions disabled on x86 (machines that advertise AMX but fault on it: see docs/runtime.md);
# - pip's wheel cache keeps that build: a rerun, or a fresh clone on the same machine, takes seconds;
# - if pip reused a llama-cpp-python wheel built without llama-server, rebuilds that one package.
# Idempotent: run it again at any time. Needs a C/C++ compiler for the first build (build-essential).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv"
LLAMA_CPP_PYTHON="llama-cpp-python==0.3.36"
say() { printf 'install: %s\n' "$*"; }
t0=$(date +%s)

pick_python() {
  local c
  for c in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

if [ -x "$VENV/bin/python" ]; then
  say "using the existing virtual environment $VENV ($("$VENV/bin/python" -V 2>&1))"
else
  PY="$(pick_python)" || { say "error: llmctl needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"; exit 1; }
  say "creating the virtual environment $VENV with $PY ($("$PY" -V 2>&1))"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

say "upgrading pip"
"${PIP[@]}" install --quiet --upgrade pip

# The llama-cpp-python build (scikit-build-core) reads CMAKE_ARGS: also build the tools, llama-server
# included, and install them next to the Python package.
CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_TOOLS_INSTALL=ON"
CMAKE_ARGS+=" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF"
case "$(uname -m)" in
  x86_64|amd64|i?86)
    AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    CMAKE_ARGS+=" -DCMAKE_C_FLAGS='$AMX' -DCMAKE_CXX_FLAGS='$AMX'" ;;
esac
export CMAKE_ARGS

if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
  say "warning: no C++ compiler found; a first build of llama-cpp-python needs one (apt-get install build-essential)"
fi

say "pip install -e . (llama-cpp-python builds from source once, ~6 min on 2 cores; later runs reuse pip's wheel cache)"
"${PIP[@]}" install --quiet -e "$ROOT"

server_path() {
  "$VENV/bin/python" - <<'EOF'
import importlib.util, os, pathlib
spec = importlib.util.find_spec("llama_cpp")
p = pathlib.Path(spec.origin).resolve().parent.parent / "bin" / "llama-server" if spec and spec.origin else None
print(p if p and os.access(p, os.X_OK) else "")
EOF
}

SERVER="$(server_path)"
if [ -z "$SERVER" ]; then
  say "the cached llama-cpp-python wheel has no llama-server: rebuilding $LLAMA_CPP_PYTHON with CMAKE_ARGS"
  "${PIP[@]}" install --quiet --no-cache-dir --force-reinstall --no-deps "$LLAMA_CPP_PYTHON"
  SERVER="$(server_path)"
fi
if [ -z "$SERVER" ]; then
  say "warning: llama-server is still missing; \`llmctl run\` will use llama-cpp-python in process"
else
  say "llama-server: $SERVER"
fi

say "done in $(( $(date +%s) - t0 ))s: $VENV/bin/llmctl ($("$VENV/bin/llmctl" --version))"
say "next: $VENV/bin/llmctl run gemma3:270m \"Why is the sky blue?\""
