#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: skopeo (OCI interop) and
# docker-registry (distribution 2.8, the registry the push/pull tests talk to), and Chromium, the real
# browser the web console's tests drive (through Playwright, never with a browser of its own).
# Idempotent: does nothing when all are already on PATH.
set -euo pipefail
need=()
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)  # the gateway's `curl -d` test
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: present (skopeo, docker-registry, htpasswd, openssl, curl, chromium)"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system packages: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the registry as a service on :5000 when systemd runs; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl stop docker-registry || true
fi
echo "system packages: installed ${need[*]}"
