#!/usr/bin/env bash
# Download the cp312 wheels that bench/gpu/run_h100.sh installs on the device machine (no package registry
# there; it has numpy, pyyaml and huggingface_hub). Run from the repository root; .whl/ is git-ignored.
set -euo pipefail
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 -d .whl \
  typer==0.29.2 click==8.5.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 Pygments==2.21.0 shellingham==1.5.4 \
  typing_extensions==4.16.0 httpx==0.28.1 httpcore==1.0.9 h11==0.16.0 anyio==4.16.0 sniffio==1.3.1 idna==3.20 \
  certifi==2026.10.19.post1 fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic_core==2.50.5 \
  annotated-types==0.8.0 annotated-doc==0.0.7 typing-inspection==0.4.5 uvicorn==0.54.0 uvloop==0.23.0 \
  httptools==0.9.0 prometheus_client==0.26.0 gguf==0.19.0 tqdm==4.70.1 opentelemetry-api==1.45.2 \
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.4
