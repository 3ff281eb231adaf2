#!/usr/bin/env bash
# Resolve (or build) the kube-apiserver and etcd binaries for the Python test suite.
#
#   bash tests/testenv/build.sh            resolve, building into the cache when missing
#   bash tests/testenv/build.sh --no-build resolve only; exit 1 with a message when missing
#   bash tests/testenv/build.sh --key      print the cache key and exit
#
# Order: (1) $KUBEBUILDER_ASSETS (envtest layout: a directory holding kube-apiserver and etcd);
# (2) the cache $STOKER_TESTENV_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/stoker/testenv,
# in the sub-directory <k8s version>-<hash of go.mod, go.sum and the two main.go files>;
# (3) a `go build` into a temporary directory beside that one, renamed into place when complete.
# The resolved assets directory is the last line on stdout; everything else goes to stderr.
# tests/support/kubeenv.py implements the same resolution; keep the two in step.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=build
case "${1:-}" in
  "") ;;
  --no-build) mode=resolve ;;
  --key) mode=key ;;
  *) echo "usage: $0 [--no-build|--key]" >&2; exit 2 ;;
esac

fail() { printf 'testenv: %s\n' "$*" >&2; exit 1; }
have_bins() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$here/go.mod")
[ -n "$k8s_version" ] || fail "no k8s.io/kubernetes requirement in $here/go.mod"
digest=$(cat "$here/go.mod" "$here/go.sum" "$here/cmd/etcd/main.go" \
  "$here/cmd/kube-apiserver/main.go" | sha256sum | cut -c1-16)
key="$k8s_version-$digest"
if [ "$mode" = key ]; then echo "$key"; exit 0; fi

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  have_bins "$KUBEBUILDER_ASSETS" ||
    fail "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS does not hold executable kube-apiserver and etcd"
  echo "testenv: using KUBEBUILDER_ASSETS" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache_root=${STOKER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stoker/testenv}
dest="$cache_root/$key"
if have_bins "$dest"; then
  echo "testenv: cached $dest" >&2
  echo "$dest"
  exit 0
fi

need_msg="kube-apiserver and etcd $k8s_version are not built. Install Go 1.24 or newer (with access
to the Go module proxy on the first run) and run 'make testenv', or set KUBEBUILDER_ASSETS to a
directory holding kube-apiserver and etcd (e.g. from setup-envtest)."
[ "$mode" = build ] || fail "$need_msg"
command -v go >/dev/null 2>&1 || fail "go not found on PATH. $need_msg"
export GOTOOLCHAIN=local CGO_ENABLED=0
go_version=$(go env GOVERSION)
go_minor=$(echo "$go_version" | sed -nE 's/^go1\.([0-9]+).*/\1/p')
[ -n "$go_minor" ] && [ "$go_minor" -ge 24 ] || fail "$go_version is too old. $need_msg"

mkdir -p "$cache_root"
# A build killed with SIGKILL cannot run its trap: sweep temporary directories older than 2 h.
find "$cache_root" -maxdepth 1 -name '.build-*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
tmp=$(mktemp -d "$cache_root/.build-$key-XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags="$ldflags -X $p.gitTreeState=clean"
done
echo "testenv: building kube-apiserver and etcd $k8s_version with $go_version into $dest" >&2
start=$(date +%s)
(cd "$here" && go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/" \
  ./cmd/kube-apiserver ./cmd/etcd) >&2 ||
  fail "go build failed (see above); the first build downloads modules from the Go module proxy"
"$tmp/kube-apiserver" --version >&2 || fail "the built kube-apiserver does not run"
"$tmp/etcd" --version >&2 || fail "the built etcd does not run"
echo "testenv: built in $(( $(date +%s) - start ))s" >&2

# Publish atomically: the key directory appears complete or not at all.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
  have_bins "$dest" || fail "could not move $tmp to $dest"
  echo "testenv: $dest was published concurrently; keeping it" >&2
  rm -rf "$tmp"
fi
trap - EXIT
echo "$dest"
