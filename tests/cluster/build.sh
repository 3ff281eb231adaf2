#!/usr/bin/env bash
# Resolve (or build) the node binaries of the single-node test cluster: kubelet,
# kube-controller-manager, kube-scheduler and kube-proxy, all in ONE `go build`.
#
#   bash tests/cluster/build.sh            resolve, building into the cache when missing
#   bash tests/cluster/build.sh --no-build resolve only; exit 1 with a message when missing
#   bash tests/cluster/build.sh --key      print the cache key and exit
#
# The cache is $STOKER_CLUSTER_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/stoker/cluster, in the
# sub-directory <k8s version>-<hash of go.mod, go.sum and the four main.go files>; a build goes into
# a temporary directory beside it, renamed into place when complete. This is a sibling module of
# tests/testenv (etcd + kube-apiserver) at the same Kubernetes version: a separate go.mod keeps the
# testenv's cache key unchanged. The resolved directory is the last line on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmds=(kubelet kube-controller-manager kube-scheduler kube-proxy)
mode=build
case "${1:-}" in
  "") ;;
  --no-build) mode=resolve ;;
  --key) mode=key ;;
  *) echo "usage: $0 [--no-build|--key]" >&2; exit 2 ;;
esac

fail() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
have_bins() { local c; for c in "${cmds[@]}"; do [ -x "$1/$c" ] || return 1; done; }

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$here/go.mod")
[ -n "$k8s_version" ] || fail "no k8s.io/kubernetes requirement in $here/go.mod"
testenv_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' \
  "$here/../testenv/go.mod")
[ "$k8s_version" = "$testenv_version" ] ||
  fail "tests/cluster requires k8s.io/kubernetes $k8s_version but tests/testenv $testenv_version; bump both"
digest=$(for c in go.mod go.sum "${cmds[@]/#/cmd/}"; do
  f="$here/$c"; [ -d "$f" ] && f="$f/main.go"; cat "$f"; done | sha256sum | cut -c1-16)
key="$k8s_version-$digest"
if [ "$mode" = key ]; then echo "$key"; exit 0; fi

cache_root=${STOKER_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stoker/cluster}
dest="$cache_root/$key"
if have_bins "$dest"; then
  echo "cluster: cached $dest" >&2
  echo "$dest"
  exit 0
fi

need_msg="the cluster's node binaries $k8s_version are not built. Install Go 1.24 or newer (with access
to the Go module proxy on the first run) and run 'make cluster-bins'."
[ "$mode" = build ] || fail "$need_msg"
command -v go >/dev/null 2>&1 || fail "go not found on PATH. $need_msg"
export GOTOOLCHAIN=local CGO_ENABLED=0
go_version=$(go env GOVERSION)
go_minor=$(echo "$go_version" | sed -nE 's/^go1\.([0-9]+).*/\1/p')
[ -n "$go_minor" ] && [ "$go_minor" -ge 24 ] || fail "$go_version is too old. $need_msg"

mkdir -p "$cache_root"
# A build killed with SIGKILL cannot run its trap: sweep temporary directories older than 3 h.
find "$cache_root" -maxdepth 1 -name '.build-*' -mmin +180 -exec rm -rf {} + 2>/dev/null || true
tmp=$(mktemp -d "$cache_root/.build-$key-XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags="$ldflags -X $p.gitTreeState=clean"
done
echo "cluster: building ${cmds[*]} $k8s_version with $go_version into $dest" >&2
start=$(date +%s)
(cd "$here" && go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/" \
  "${cmds[@]/#/./cmd/}") >&2 ||
  fail "go build failed (see above); the first build downloads modules from the Go module proxy"
for c in "${cmds[@]}"; do "$tmp/$c" --version >&2 || fail "the built $c does not run"; done
echo "cluster: built in $(( $(date +%s) - start ))s" >&2

# Publish atomically: the key directory appears complete or not at all.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
  have_bins "$dest" || fail "could not move $tmp to $dest"
  echo "cluster: $dest was published concurrently; keeping it" >&2
  rm -rf "$tmp"
fi
trap - EXIT
echo "$dest"
