#!/usr/bin/env bash
# Start the single-node test cluster (make cluster): etcd and kube-apiserver from tests/testenv,
# kubelet, kube-controller-manager, kube-scheduler and kube-proxy from tests/cluster, containerd
# and runc from Debian, images from build/images (make images). Everything runs inside network
# and mount namespaces of its own (see common.sh); stop it with tests/cluster/down.sh.
#
#   bash tests/cluster/up.sh     prints `export KUBECONFIG=…` and how to enter the namespaces
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 ))s"; }

if [ "${1:-}" != --inside ]; then
  [ "$(id -u)" = 0 ] || die "needs root (namespaces, containerd, cgroups)"
  for c in containerd runc ctr unshare nsenter iptables openssl jq; do
    command -v $c >/dev/null || die "$c not found: run 'make cluster-sysdeps'"; done
  [ -x /usr/lib/cni/bridge ] || die "CNI plugins missing: run 'make cluster-sysdeps'"
  CP=$(bash "$repo/tests/testenv/build.sh" --no-build | tail -1)
  BIN=$(bash "$here/build.sh" --no-build | tail -1)
  [ -s "$IMAGES/pause.oci.tar" ] || die "no images in $IMAGES: run 'make images'"
  if p=$(holder_pid); then die "a cluster is already running (holder PID $p): run 'make cluster-down'"; fi
  [ -e "$S/sysctls.before" ] && die "$S holds an unfinished tear-down: run 'make cluster-down' first"
  rm -rf "$S"
  mkdir -p "$S"/{pki,etc,logs,cni/net.d,ns/run,ns/var-lib,ns/var-log}
  # Host state the namespaces cannot hold: record before touching it.
  for k in $SYSCTLS; do echo "$k=$(sysctl -n "$k")"; done > "$S/sysctls.before"
  for d in $(cgroup_dirs); do
    [ -d "$d/$CGROUP_ROOT" ] && die "$d/$CGROUP_ROOT exists: another cluster, or run 'make cluster-down'"
    mkdir "$d/$CGROUP_ROOT"; echo "$d/$CGROUP_ROOT" >> "$S/cgroups.created"
    if [ -e "$d/cpuset.cpus" ]; then  # a cpuset child starts empty: give it its parent's CPUs
      cat "$d/cpuset.cpus" > "$d/$CGROUP_ROOT/cpuset.cpus"; cat "$d/cpuset.mems" > "$d/$CGROUP_ROOT/cpuset.mems"
    fi
  done
  # The holder: creates the namespaces, sets up the node's network and private mounts, then sleeps.
  setsid unshare --net --mount --propagation private -- bash -c '
    set -e; S=$1
    ip link set lo up
    ip link add node0 type bridge; ip addr add "$2" dev node0; ip link set node0 up  # no ports
    ip route add default dev node0   # no way out: a pull or a stray lookup fails, never leaks
    mount --bind "$S/ns/run" /run; mkdir -p /run/sshd
    mount --bind "$S/ns/var-lib" /var/lib; mount --bind "$S/ns/var-log" /var/log
    touch "$S/holder.ready"; exec sleep infinity' holder "$S" "$NODE_CIDR" \
    > "$S/logs/holder.log" 2>&1 < /dev/null &
  echo $! > "$S/holder.pid"
  for _ in $(seq 100); do [ -e "$S/holder.ready" ] && break; sleep 0.1; done
  [ -e "$S/holder.ready" ] || die "the namespace holder did not start: see $S/logs/holder.log"
  readlink "/proc/$(cat "$S/holder.pid")/ns/net" > "$S/netns"
  say "namespaces ready $(el)"
  CP=$CP BIN=$BIN T0=$t0 inside bash "$here/up.sh" --inside
  exit
fi

# ---------------------------------------------------------------- inside the cluster's namespaces
t0=${T0:-$t0}
cd "$S"
start() { local name=$1; shift; setsid "$@" > "logs/$name.log" 2>&1 < /dev/null & echo $! > "$name.pid"; }
wait_for() { local what=$1 i; shift
  for i in $(seq 600); do "$@" > /dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what not ready after 120 s: see $S/logs, then stop what started with 'make cluster-down'"; }

# --- PKI: one throw-away CA, a certificate per component (valid 7 days)
(
  cd pki
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 -subj /CN=stoker-e2e-ca 2>/dev/null
  issue() { # file, CN, O, SANs (server certificates only)
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2${3:+/O=$3}" 2>/dev/null
    if [ -n "${4:-}" ]; then printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$4" > "$1.ext"
    else printf 'extendedKeyUsage=clientAuth\n' > "$1.ext"; fi
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 7 \
      -extfile "$1.ext" 2>/dev/null; }
  issue apiserver kube-apiserver "" "IP:127.0.0.1,IP:$NODE_IP,IP:${SVC_CIDR%.*/*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue admin stoker-e2e-admin system:masters
  issue kubelet "system:node:$NODE" system:nodes
  issue kubelet-serving "system:node:$NODE" system:nodes "IP:$NODE_IP,DNS:$NODE"
  issue apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  issue kube-proxy system:kube-proxy ""
  issue kcm system:kube-controller-manager ""
  issue sched system:kube-scheduler ""
  openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)
for n in admin kubelet kube-proxy kcm sched; do cat > "etc/$n.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: stoker-e2e, cluster: {server: "https://$NODE_IP:6443", certificate-authority: $S/pki/ca.crt}}]
users: [{name: $n, user: {client-certificate: $S/pki/$n.crt, client-key: $S/pki/$n.key}}]
contexts: [{name: stoker-e2e, context: {cluster: stoker-e2e, user: $n}}]
current-context: stoker-e2e
EOF
done
echo "nameserver $NODE_IP" > etc/resolv.conf  # tests/cluster/dns.py: no upstream, REFUSED at once

# --- containerd: CRI with cgroupfs, the local pause image, the CNI bridge; all state under $S
cat > etc/containerd.toml <<EOF
version = 2
root = "$S/containerd/root"
state = "$S/containerd/state"
[grpc]
  address = "$S/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$S/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true          # root here lacks CAP_SYS_RESOURCE (sandboxes ask for -998)
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$S/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni/net.d"
EOF
cat > cni/net.d/10-bridge.conflist <<EOF
{"cniVersion": "1.0.0", "name": "stoker-e2e", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$S/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
start containerd containerd -c etc/containerd.toml
wait_for containerd test -S containerd.sock
for tar in "$IMAGES"/*.oci.tar; do
  name=$(cat "${tar%.oci.tar}.ref"); repo_name=${name%:*}
  ctr -a containerd.sock -n k8s.io images import --base-name "$repo_name" "$tar" > /dev/null ||
    die "could not import $tar as $name"
done
say "containerd up, images imported $(el)"

# --- etcd and kube-apiserver (the testenv's binaries, node address and Node authorizer added)
start etcd "$CP/etcd" --data-dir="$S/etcd" --listen-client-urls=http://127.0.0.1:2379 \
  --advertise-client-urls=http://127.0.0.1:2379 --listen-peer-urls=http://127.0.0.1:2380 \
  --initial-advertise-peer-urls=http://127.0.0.1:2380 --name=n --initial-cluster=n=http://127.0.0.1:2380 \
  --unsafe-no-fsync=true --log-level=warn
start kube-apiserver "$CP/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 --cert-dir="$S/certs" \
  --tls-cert-file=pki/apiserver.crt --tls-private-key-file=pki/apiserver.key --client-ca-file=pki/ca.crt \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=pki/sa.pub \
  --service-account-signing-key-file=pki/sa.key --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
  --kubelet-client-certificate=pki/apiserver-kubelet-client.crt --kubelet-client-key=pki/apiserver-kubelet-client.key \
  --kubelet-certificate-authority=pki/ca.crt --kubelet-preferred-address-types=InternalIP,Hostname \
  --profiling=false
api() { curl -sf --cacert pki/ca.crt --cert pki/admin.crt --key pki/admin.key "https://$NODE_IP:6443$1"; }
wait_for kube-apiserver api /readyz
say "kube-apiserver ready $(el)"
# Cluster DNS: Services' names from the API, the tests' own names from etc/dns-hosts.
touch etc/dns-hosts
py="$repo/.venv/bin/python"; [ -x "$py" ] || py=python3
start dns "$py" "$here/dns.py" --bind "$NODE_IP" --state "$S"

K="--kubeconfig=etc/kcm.kubeconfig --authentication-kubeconfig=etc/kcm.kubeconfig --authorization-kubeconfig=etc/kcm.kubeconfig"
start kube-controller-manager "$BIN/kube-controller-manager" $K --service-account-private-key-file=pki/sa.key \
  --root-ca-file=pki/ca.crt --cluster-signing-cert-file=pki/ca.crt --cluster-signing-key-file=pki/ca.key \
  --use-service-account-credentials=true --leader-elect=false --bind-address=127.0.0.1 \
  --service-cluster-ip-range="$SVC_CIDR"
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig=etc/sched.kubeconfig \
  --authentication-kubeconfig=etc/sched.kubeconfig --authorization-kubeconfig=etc/sched.kubeconfig \
  --leader-elect=false --bind-address=127.0.0.1

# --- kubelet (cgroup v1 and this VM's quirks: docs/testenv.md) and kube-proxy
cat > etc/kubelet.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $S/pki/ca.crt}}
authorization: {mode: Webhook}
tlsCertFile: $S/pki/kubelet-serving.crt
tlsPrivateKeyFile: $S/pki/kubelet-serving.key
address: $NODE_IP
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$S/containerd.sock
podLogsDir: $S/podlogs
volumePluginDir: $S/volplugins
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $S/etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
makeIPTablesUtilChains: false
EOF
start kubelet "$BIN/kubelet" --config=etc/kubelet.yaml --kubeconfig=etc/kubelet.kubeconfig \
  --root-dir="$S/kubelet" --hostname-override="$NODE" --node-ip="$NODE_IP"
start kube-proxy "$BIN/kube-proxy" --kubeconfig=etc/kube-proxy.kubeconfig --hostname-override="$NODE" \
  --cluster-cidr="$POD_CIDR" --proxy-mode=iptables --conntrack-max-per-core=0 \
  --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
  --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 --nodeport-addresses=primary
node_ready() { api "/api/v1/nodes/$NODE" |
  jq -e '.status.conditions[]? | select(.type=="Ready" and .status=="True")'; }
wait_for "node $NODE" node_ready
say "node Ready $(el)"
wait_for "default ServiceAccount" api /api/v1/namespaces/default/serviceaccounts/default
wait_for "kube-root-ca.crt" api /api/v1/namespaces/default/configmaps/kube-root-ca.crt
say "cluster up in $(el)"
echo "export KUBECONFIG=$S/etc/admin.kubeconfig  # reachable only inside: nsenter -t $(cat "$S/holder.pid") -n -m"
