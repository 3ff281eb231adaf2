#!/usr/bin/env bash
# Resolve (or build) the promtool binary that tests/test_alert_rules.py runs `promtool test rules`
# with, from its Go module (only the Go module proxy is reachable: no release download). Cached
# outside the repository, keyed by version; the binary's path is the last line on stdout, all
# else goes to stderr. PROMTOOL_BIN overrides everything.
#
#   bash tests/promtool/build.sh            resolve, building into the cache when missing
#   bash tests/promtool/build.sh --no-build resolve only; exit 1 with a message when missing
set -euo pipefail
# Prometheus tags its Go module v0.<major*100+minor>.<patch>: v0.316.0 is Prometheus 3.16.0.
version="v0.316.0"
cache="${STOKER_PROMTOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stoker/promtool}/$version"
mode=build
case "${1:-}" in
  "") ;;
  --no-build) mode=resolve ;;
  *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
esac
if [ -n "${PROMTOOL_BIN:-}" ]; then
  [ -x "$PROMTOOL_BIN" ] || { echo "promtool: PROMTOOL_BIN=$PROMTOOL_BIN is not executable" >&2; exit 1; }
  echo "$PROMTOOL_BIN"; exit 0
fi
if [ -x "$cache/promtool" ]; then echo "$cache/promtool"; exit 0; fi
[ "$mode" = build ] || {
  echo "promtool: not built; run 'make promtool-bin' (needs Go and the Go module proxy once) or set PROMTOOL_BIN" >&2
  exit 1; }
command -v go >/dev/null || {
  echo "promtool: not built and no Go toolchain; install Go 1.24+ or set PROMTOOL_BIN" >&2; exit 1; }
mkdir -p "${cache%/*}"
# A build killed with SIGKILL cannot run its trap: sweep temporary directories older than 2 h.
find "${cache%/*}" -maxdepth 1 -name '.tmp.*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
tmp="$(mktemp -d "${cache%/*}/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "promtool: building $version from the Go module proxy (several minutes, once)" >&2
GOBIN="$tmp" CGO_ENABLED=0 nice -n 19 go install -trimpath -ldflags="-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@$version" >&2
"$tmp/promtool" --version >&2 || { echo "promtool: the built binary does not run" >&2; exit 1; }
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
echo "$cache/promtool"
