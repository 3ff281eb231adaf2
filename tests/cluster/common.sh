# Shared settings of tests/cluster/{up,down,e2e}.sh (sourced, not run). See docs/testenv.md.
#
# The cluster lives in a network namespace and a mount namespace of its own, held open by one
# `sleep` process (the holder): its iptables rules, CNI bridge, veths, overlay and tmpfs mounts
# and the kubelet's hard-coded /var/lib/kubelet, /var/log/containers and /run/containerd paths
# exist only there and vanish with it. What the kernel does not namespace (cgroup v1 and a few
# sysctls the kubelet sets) is recorded at start and restored at tear-down.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
S=${STOKER_CLUSTER_STATE:-/tmp/stoker-cluster}
NODE=stoker-e2e
NODE_IP=10.250.0.1          # the node's address: a port-less bridge in the cluster's netns
NODE_CIDR=10.250.0.1/24
POD_CIDR=10.88.0.0/24
SVC_CIDR=10.96.0.0/24
CGROUP_ROOT=stoker-e2e      # kubelet's cgroupRoot, one directory per cgroup v1 hierarchy
IMAGES=${STOKER_IMAGES:-$repo/build/images}
PAUSE_IMAGE=registry.k8s.io/pause:3.10
# Global (not per-netns) sysctls the kubelet writes: saved at start, restored at tear-down.
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
# up.sh and down.sh remove this directory: refuse anything that does not look like ours.
[[ "$S" == /?* && "$(basename "$S")" == *stoker* ]] ||
  die "STOKER_CLUSTER_STATE=$S: must be an absolute path whose last part contains 'stoker'"
holder_pid() { local p; p=$(cat "$S/holder.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"; }
# Run a command inside the cluster's namespaces.
inside() { local p; p=$(holder_pid) || die "no cluster is running (no live $S/holder.pid)"
  nsenter -t "$p" -n -m --wd="$PWD" -- "$@"; }
cgroup_dirs() { local d; for d in /sys/fs/cgroup/*/; do
  [ -e "$d/cgroup.procs" ] && echo "${d%/}"; done; }
