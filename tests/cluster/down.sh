#!/usr/bin/env bash
# Stop the test cluster that tests/cluster/up.sh started (make cluster-down): by its PID files,
# then every process left in its namespaces, then the host state it recorded (cgroups, sysctls).
# Safe to run twice, or after a failed start.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -d "$S" ] || { say "nothing to stop ($S does not exist)"; exit 0; }
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 ))s"; }

stop() { # name [tenths of a second to wait]: TERM by PID file, then KILL
  local p; p=$(cat "$S/$1.pid" 2>/dev/null) || return 0
  if kill "$p" 2>/dev/null; then
    for _ in $(seq "${2:-100}"); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  fi
  rm -f "$S/$1.pid"; }

if holder_pid > /dev/null; then
  cd "$S"
  api() { inside curl -sf --cacert pki/ca.crt --cert pki/admin.crt --key pki/admin.key "$@"; }
  # 1. Let the kubelet tear the pods down (CNI DEL, unmounts) with nothing re-creating them.
  if [ -f kubelet.pid ] && kill -0 "$(cat kubelet.pid)" 2>/dev/null; then
    stop kube-controller-manager; stop kube-scheduler
    for ns in $(api "https://$NODE_IP:6443/api/v1/namespaces" | jq -r '.items[].metadata.name'); do
      api -X DELETE "https://$NODE_IP:6443/api/v1/namespaces/$ns/pods?gracePeriodSeconds=0" > /dev/null; done
    for _ in $(seq 120); do
      [ "$(inside ctr -a containerd.sock -n k8s.io tasks ls -q 2>/dev/null | wc -l)" = 0 ] && break; sleep 0.5
    done
  fi
  say "pods gone $(el)"
  stop kube-controller-manager; stop kube-scheduler; stop kube-proxy; stop kubelet
  for c in $(inside ctr -a containerd.sock -n k8s.io tasks ls -q 2>/dev/null); do
    inside ctr -a containerd.sock -n k8s.io tasks kill -s KILL "$c"; done
  stop containerd 200; stop dns; stop kube-apiserver; stop etcd
  say "cluster processes stopped $(el)"
fi
# 2. Whatever is still in the cluster's network namespace (shims) or its cgroups (containers)
#    is ours: kill it,
#    then the holder; the namespaces and every mount in them end with their last process.
if [ -s "$S/netns" ]; then
  netns=$(cat "$S/netns"); holder=$(cat "$S/holder.pid" 2>/dev/null || true)
  for _ in 1 2 3; do
    left=""
    for d in /proc/[0-9]*; do
      p=${d#/proc/}; [ "$p" = "$holder" ] && continue
      if [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$netns" ] ||
        grep -q ":/$CGROUP_ROOT/" "$d/cgroup" 2>/dev/null; then left="$left $p"; fi
    done
    [ -z "$left" ] && break
    say "killing processes left in the cluster's namespace:$left"; kill -9 $left 2>/dev/null; sleep 0.5
  done
  stop holder 50
  rm -f "$S/netns"
fi
# 3. Host state the namespaces could not hold.
if [ -f "$S/cgroups.created" ]; then
  while read -r d; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$d" ] && say "could not remove cgroup $d (processes still in it?)"
  done < "$S/cgroups.created"
  rm -f "$S/cgroups.created"
fi
if [ -f "$S/sysctls.before" ]; then
  while IFS== read -r k v; do
    [ "$(sysctl -n "$k")" = "$v" ] || sysctl -q -w "$k=$v"
  done < "$S/sysctls.before"
  rm -f "$S/sysctls.before"
fi
# Keep the logs for a post-mortem; drop the rest (containerd's root is ~200 MB).
find "$S" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
say "down in $(( $(date +%s) - t0 ))s (logs kept in $S/logs)"
