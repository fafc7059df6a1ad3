#!/usr/bin/env bash
# README's second command: install everything the tests need (idempotently, with caching) and run them all.
# `.ci/run` calls exactly this. Extra arguments go to pytest (e.g. `bash scripts/test.sh -k store`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/install.sh
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
echo "running the test suite"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
