#!/usr/bin/env bash
# Regenerate go.mod/go.sum for a Kubernetes release: bash tests/testenv/bump.sh 1.34.4
#
# Upstream's k8s.io/kubernetes go.mod requires every staging module at the fake version v0.0.0
# and replaces it with ./staging/src/...; replace lines only apply in the main module, so this
# script reads the release's own go.mod from the Go module proxy and pins every staging module
# it names to the matching published v0.MINOR.PATCH. etcd's server module is pinned to the
# version of the etcd client that the release itself selects.
set -euo pipefail

usage() { echo "usage: $0 K8S_VERSION   (e.g. 1.34.4)" >&2; exit 2; }
[ $# -eq 1 ] || usage
k8s=${1#v}
[[ $k8s =~ ^1\.[0-9]+\.[0-9]+$ ]] || usage
staging="v0.${k8s#1.}"

cd "$(dirname "${BASH_SOURCE[0]}")"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

upstream_mod=$(go mod download -json "k8s.io/kubernetes@v$k8s" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
go_line=$(awk '$1 == "go" {print $2; exit}' "$upstream_mod")
godebug=$(awk '$1 == "godebug" && $2 ~ /=/ {print $2; exit}' "$upstream_mod")
mapfile -t modules < <(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" |
  awk '{print $1}' | sort -u)
[ ${#modules[@]} -gt 0 ] || { echo "no staging replace lines found in $upstream_mod" >&2; exit 1; }

rm -f go.mod go.sum
go mod init stoker.invalid/testenv >/dev/null 2>&1
# GODEBUG defaults come from the main module's go line: match upstream's, not the local Go's.
go mod edit -go="$go_line"
[ -z "$godebug" ] || go mod edit -godebug="$godebug"
for m in "${modules[@]}"; do
  go mod edit -replace="$m=$m@$staging"
done
go get "k8s.io/kubernetes@v$k8s"
etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)
go get "go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
go mod verify >/dev/null

server=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
client=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)
[ "$server" = "$client" ] || { echo "etcd server $server != client $client" >&2; exit 1; }
echo "k8s.io/kubernetes v$k8s, ${#modules[@]} staging modules at $staging, etcd $server, go $go_line"
