#!/usr/bin/env bash
# Resolve (or build) the helm binary the chart tests use, from its Go module (no release
# download: only the Go module proxy is reachable). Cached outside the repository, keyed by
# version; the binary's path is the last line on stdout. HELM_BIN overrides everything.
set -euo pipefail
version="v3.16.4"
cache="${STOKER_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stoker/helm}/$version"
if [ -n "${HELM_BIN:-}" ]; then
  [ -x "$HELM_BIN" ] || { echo "helm: HELM_BIN=$HELM_BIN is not executable" >&2; exit 1; }
  echo "$HELM_BIN"; exit 0
fi
if [ -x "$cache/helm" ]; then echo "$cache/helm"; exit 0; fi
command -v go >/dev/null || {
  echo "helm: not built and no Go toolchain; install Go 1.22+ or set HELM_BIN" >&2; exit 1; }
tmp="$(mktemp -d "${cache%/*}.tmp.XXXXXX" 2>/dev/null || (mkdir -p "${cache%/*}" && mktemp -d "${cache%/*}/.tmp.XXXXXX"))"
trap 'rm -rf "$tmp"' EXIT
echo "helm: building $version from the Go module proxy (a few minutes, once)" >&2
GOBIN="$tmp" CGO_ENABLED=0 go install -ldflags="-s -w" "helm.sh/helm/v3/cmd/helm@$version" >&2
mkdir -p "${cache%/*}"
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
echo "$cache/helm"
