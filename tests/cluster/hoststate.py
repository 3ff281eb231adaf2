"""Snapshot the host state a test cluster could leak, and compare two snapshots.

    python tests/cluster/hoststate.py snapshot FILE   write the host's state as JSON
    python tests/cluster/hoststate.py compare FILE    exit 1, listing each difference, when the
                                                      host now differs from the snapshot in FILE

Run both on the host (outside the cluster's namespaces). Processes are compared only where they
could be the cluster's (the container runtime, the cluster's binaries and state directory, its
cgroups): other engineers' processes come and go on a shared machine. Everything else, the
mounts, links, iptables chains, top-level cgroups, the paths the kubelet and containerd hard-code
and the global sysctls the kubelet writes, is compared whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CGROUP_ROOT = "stoker-e2e"
STATE = os.environ.get("STOKER_CLUSTER_STATE", "/tmp/stoker-cluster")
RUNTIME = {"containerd", "containerd-shim", "containerd-shim-runc-v2", "runc", "pause"}
CLUSTER_BINS = {"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"}
SYSCTLS = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
]
HARD_CODED_PATHS = [
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/containerd",
    "/run/netns",
    "/opt/containerd",
    "/etc/cni/net.d",
]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def processes() -> list[str]:
    """Processes that could be the cluster's: runtime, cluster binaries, its state or cgroups."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        argv = _read(proc / "cmdline").split("\0")
        name = Path(argv[0]).name if argv and argv[0] else _read(proc / "comm").strip()
        ours = (
            name in RUNTIME
            or name in CLUSTER_BINS
            or STATE in " ".join(argv)
            or f":/{CGROUP_ROOT}/" in _read(proc / "cgroup")
        )
        if ours and proc.name != str(os.getpid()):
            found.append(f"{name} {' '.join(argv[1:4])}".strip())
    return sorted(found)


def mounts() -> list[str]:
    """Mount points and file system types of the host's mount namespace."""
    lines = _read(Path("/proc/self/mountinfo")).splitlines()
    return sorted(f"{f[4]} {f[f.index('-') + 1]}" for f in (line.split() for line in lines))


def links() -> list[str]:
    """Network links of the host's network namespace."""
    return sorted(p.name for p in Path("/sys/class/net").iterdir())


def iptables_chains() -> list[str]:
    """table:chain of every iptables and ip6tables chain (both the nft and legacy back-ends)."""
    chains = []
    for tool in (
        "iptables-save",
        "ip6tables-save",
        "iptables-legacy-save",
        "ip6tables-legacy-save",
    ):
        try:
            out = subprocess.run([tool], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        table = ""
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.append(f"{tool}:{table}:{line[1:].split()[0]}")
    return sorted(set(chains))


def cgroups() -> list[str]:
    """Top-level cgroups of every hierarchy, and anything under the cluster's cgroup root."""
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        found += [str(d) for d in hierarchy.iterdir() if d.is_dir()]
        root = hierarchy / CGROUP_ROOT
        if root.is_dir():
            found += [str(d) for d in root.rglob("*") if d.is_dir()]
    return sorted(found)


def sysctls() -> list[str]:
    """The global sysctls the kubelet writes, and the forwarding ones a CNI bridge would."""
    return [f"{k}={_read(Path('/proc/sys') / k).strip()}" for k in SYSCTLS]


def paths() -> list[str]:
    """Which of the paths the kubelet, containerd and CNI hard-code exist on the host."""
    return [p for p in HARD_CODED_PATHS if os.path.lexists(p)]


KINDS = {
    "processes": processes,
    "mounts": mounts,
    "links": links,
    "iptables chains": iptables_chains,
    "cgroups": cgroups,
    "sysctls": sysctls,
    "paths": paths,
}


def snapshot() -> dict[str, list[str]]:
    """The host's state, one sorted list per kind."""
    return {kind: read() for kind, read in KINDS.items()}


def differences(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """One line per item added or removed since `before`."""
    lines = []
    for kind in KINDS:
        old, new = set(before.get(kind, [])), set(after.get(kind, []))
        lines += [f"{kind}: left behind: {item}" for item in sorted(new - old)]
        lines += [f"{kind}: gone: {item}" for item in sorted(old - new)]
    return lines


def main(argv: list[str]) -> int:
    """snapshot FILE | compare FILE."""
    if len(argv) != 2 or argv[0] not in ("snapshot", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1])
    if argv[0] == "snapshot":
        path.write_text(json.dumps(snapshot(), indent=1) + "\n")
        return 0
    diff = differences(json.loads(path.read_text()), snapshot())
    for line in diff:
        print(f"host state: {line}", file=sys.stderr)
    print(f"host state: {'unchanged' if not diff else f'{len(diff)} differences'}", file=sys.stderr)
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
