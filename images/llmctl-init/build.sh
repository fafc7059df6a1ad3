#!/usr/bin/env bash
# Build the llmctl-init image from this checkout: a wheel of llmctl, then an image with docker, podman or
# buildah (CONTAINER_ENGINE picks one). The tag defaults to the one plans name:
#   images/llmctl-init/build.sh                      # ghcr.io/llmctl/llmctl-init:<llmctl version>
#   images/llmctl-init/build.sh registry.example.com/llmctl-init:dev && docker push ...
# then `llmctl plan ... --init-image registry.example.com/llmctl-init:dev`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
version="$("$python" -c 'import re,sys; print(re.search(r"^version = \"([^\"]+)\"", open(sys.argv[1]).read(), re.M).group(1))' "$root/pyproject.toml")"
tag="${1:-ghcr.io/llmctl/llmctl-init:$version}"
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  for candidate in docker podman buildah; do
    if command -v "$candidate" >/dev/null 2>&1; then engine="$candidate"; break; fi
  done
fi
if [ -z "$engine" ]; then
  echo "build.sh: no docker, podman or buildah found (set CONTAINER_ENGINE)" >&2
  exit 1
fi
rm -rf "$here/dist"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$here/dist" "$root"
wheel="$(cd "$here/dist" && ls llmctl-*.whl)"
if [ "$engine" = buildah ]; then
  buildah bud --build-arg "LLMCTL_WHEEL=$wheel" -t "$tag" "$here"
else
  "$engine" build --build-arg "LLMCTL_WHEEL=$wheel" -t "$tag" "$here"
fi
rm -rf "$here/dist"
echo "built $tag"
