"""How many CPUs this process may use: its affinity, capped by its cgroup's CPU quota.

A container's CPU limit (the injected agent's default is 200m) is a quota the kernel enforces
per period, not a number of cores the process sees: `os.cpu_count()` and the affinity still say
every core of the node. Work split across processes gains nothing within one quota, and a
child's start-up then takes its share of the same budget.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
_READ_LIMIT = 256  # bytes: these files hold two numbers


def available(cgroup_root: str | None = None) -> float:
    """The CPUs this process may use at once: its affinity's cores, or fewer when a cgroup
    quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`) allows less. An unreadable or malformed quota
    file counts as no quota."""
    root = CGROUP_ROOT if cgroup_root is None else cgroup_root
    cores = float(len(os.sched_getaffinity(0)))
    quota = _quota_v2(root)
    if quota is None:
        quota = _quota_v1(root)
    return cores if quota is None else min(cores, quota)


def _quota_v2(root: str) -> float | None:
    fields = _read(os.path.join(root, "cpu.max")).split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _quota_v1(root: str) -> float | None:
    quota = _read(os.path.join(root, "cpu", "cpu.cfs_quota_us")).strip()
    period = _read(os.path.join(root, "cpu", "cpu.cfs_period_us")).strip()
    return _ratio(quota, period)  # a quota of -1 (none) gives None


def _ratio(quota: str, period: str) -> float | None:
    if not (quota.isdigit() and period.isdigit()) or int(period) == 0:
        return None
    return int(quota) / int(period)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_READ_LIMIT).decode("ascii", "replace")
    except OSError:
        return ""
