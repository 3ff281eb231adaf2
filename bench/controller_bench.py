"""Controller cost at 200 GatewaySyncs × 5 gateways on the real API server.

The GatewaySyncs use a few distinct local repositories (file://); the gateway pods are created
directly in the API server with the agent sidecar and a status ConfigMap reporting Synced (what
an agent would write), so only `stoker controller` works. It runs with leader election and the
chart's resync interval; `git` is a logging shim on its PATH so every `ls-remote` is counted.

Measured: the time until every GatewaySync shows all its gateways synced (first pass); reconcile
latency p50/p95 (from the controller's own histogram, interpolated within buckets) for the first
pass and at steady state; the controller's peak RSS; `ls-remote` calls per polling interval per
distinct repository and credentials (goal: exactly one); API requests per minute at steady state
by verb and resource (from the API server's `apiserver_request_total`; goal: none beyond watches,
Lease renewals and events, as nothing changes).

Memory (issue 16 item 9), in a cluster of its own: 1,000 pods, 200 of them gateways (40
GatewaySyncs × 5) and 800 ordinary workload pods (two containers with env, probes and volume
mounts each), as a namespace shared with other workloads holds them; the controller's peak RSS
(VmHWM) once it has reconciled every GatewaySync. With `STOKER_BENCH_BASELINE=DIR` (the `src`
directory of another checkout, e.g. `git worktree add /tmp/base <rev>`), that checkout's
controller is measured first against the same objects, and the ratio is reported: the machine
may be loaded, so compare within one run.

`--quick`: 6 GatewaySyncs × 2 gateways, 2 s intervals, a 6 s window; memory at 20 pods, 4
gateways.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import GIT_ENV  # noqa: E402
from results import Chart, Result, arguments  # noqa: E402
from servers import free_port, stop  # noqa: E402

from cluster import (  # noqa: E402
    GROUP,
    PLURAL,
    VERSION,
    apiserver_requests,
    control_plane,
    gateway_pod,
    gatewaysync,
    rss_kib,
    stoker,
)
from support.kubeenv import wait_until  # noqa: E402  (on sys.path through cluster)

SHIM = """#!/bin/sh
case " $* " in *" ls-remote "*) echo "$(date +%s.%N) $*" >> "$STOKER_BENCH_GIT_LOG";; esac
exec {git} "$@"
"""


@dataclass
class Scale:
    """How big the run is."""

    crs: int
    gateways: int
    repos: int
    interval: int  # seconds: the controller's resync and the GatewaySyncs' polling interval
    window: int  # seconds of steady state measured


FULL = Scale(crs=200, gateways=5, repos=4, interval=60, window=180)
QUICK = Scale(crs=6, gateways=2, repos=2, interval=2, window=6)


@dataclass
class Crowd:
    """The memory run: `pods` pods in one namespace, `crs` × `gateways` of them gateways."""

    pods: int
    crs: int
    gateways: int
    settle: int  # seconds the controller runs on after its first pass before its peak is read


MEMORY_FULL = Crowd(pods=1000, crs=40, gateways=5, settle=20)
MEMORY_QUICK = Crowd(pods=20, crs=2, gateways=2, settle=2)
# The controller's peak at MEMORY_FULL before its pod informer kept stripped copies (commit
# 2789f3e, measured 2026-12-06 beside the new one): the goal is half of it. (The 155 MiB of the
# main run had 1,000 small gateway pods; real workload pods are about 9 KB of JSON each.)
MEMORY_BEFORE_MIB = 202


def git_repo(path: Path) -> str:
    """A one-commit repository; its HEAD."""
    (path / "projects/site").mkdir(parents=True)
    (path / "projects/site/project.json").write_text('{"title": "site"}')
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "c"]):
        subprocess.run(["git", *args], cwd=path, env=GIT_ENV, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
    ).stdout.strip()


def status_cm(cr: str, pod: dict[str, Any], commit: str) -> dict[str, Any]:
    """The status ConfigMap an agent writes after a successful sync."""
    name = pod["metadata"]["name"]
    record = {"schemaVersion": 1, "result": "Synced", "commit": commit, "ref": "main"}
    return {
        "metadata": {
            "name": f"stoker-status-{cr}-{name}",
            "labels": {"stoker.io/cr-name": cr, "app.kubernetes.io/managed-by": "stoker-agent"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod["metadata"]["uid"]}
            ],
        },
        "data": {"status.json": json.dumps(record), "gateway": name, "pod": name},
    }


def api_key(core: Any, namespace: str) -> None:
    """The API-key Secret every GatewaySync names: one missing is read again on every pass."""
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "ignition-api-key"}, "stringData": {"apiKey": "bench"}}
    )


def workload_pod(name: str) -> dict[str, Any]:
    """An ordinary pod sharing the namespace: not a gateway, but the size real pods are."""
    container = {
        "name": "app",
        "image": "registry.example/plant/historian:2.14.3",
        "args": ["--config", "/etc/historian/config.yaml", "--listen", ":8080"],
        "env": [
            {"name": f"HISTORIAN_SETTING_{i}", "value": f"value-{i}-" + "x" * 24} for i in range(12)
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/historian"},
            {"name": "data", "mountPath": "/var/lib/historian"},
        ],
    }
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "historian", "app.kubernetes.io/part-of": "mes"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
        },
        "spec": {
            "nodeName": "bench-node",
            "containers": [container, {**container, "name": "shipper"}],
            "volumes": [{"name": "config", "configMap": {"name": "historian"}},
                        {"name": "data", "emptyDir": {}}],
        },
    }  # fmt: skip


def reconciles(url: str) -> float:
    """Reconciles the controller has finished (every GatewaySync, every outcome)."""
    try:
        return histogram(url).get(float("inf"), 0.0)
    except OSError:  # not listening yet
        return 0.0


def memory(crowd: Crowd, interval: str) -> dict[str, tuple[int, float]]:
    """Peak RSS (KiB) of the baseline's controller (when STOKER_BENCH_BASELINE is set) and of
    this checkout's, each started alone against `crowd`'s objects and read after its first
    pass over every GatewaySync and `crowd.settle` seconds more; with the seconds that first
    pass took from the controller's start."""
    peaks: dict[str, tuple[int, float]] = {}
    with control_plane() as (work, plane, core, custom, namespace):
        api_key(core, namespace)
        head = git_repo(work / "repo")
        for i in range(crowd.crs):
            cr = f"site-{i:03d}"
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL,
                gatewaysync(cr, f"file://{work}/repo", polling={"interval": interval}),
            )  # fmt: skip
            for g in range(crowd.gateways):
                pod = core.create_namespaced_pod(
                    namespace, gateway_pod(f"{cr}-gw-{g}", cr, f"{cr}-gw-{g}")
                ).to_dict()
                core.create_namespaced_config_map(namespace, status_cm(cr, pod, head))
        for i in range(crowd.pods - crowd.crs * crowd.gateways):
            core.create_namespaced_pod(namespace, workload_pod(f"historian-{i:04d}"))
        baseline = os.environ.get("STOKER_BENCH_BASELINE")
        runs = [("before", baseline)] if baseline else []
        for label, src in [*runs, ("after", None)]:
            env = {**plane.subprocess_env(), **({"PYTHONPATH": src} if src else {})}
            # A Lease of its own: the previous run's stays held until it expires.
            leases = f"leases-{label}"
            core.create_namespace({"metadata": {"name": leases}})
            port = free_port()
            url = f"http://127.0.0.1:{port}/metrics"
            started = time.monotonic()
            controller = stoker(
                ["controller", "--interval", interval, "--metrics-port", str(port),
                 "--lease-namespace", leases],
                env,
                work / f"controller-{label}.log",
            )  # fmt: skip
            try:
                wait_until(lambda url=url: reconciles(url) >= crowd.crs, 600, 1.0,
                           f"the {label} controller's first pass")  # fmt: skip
                first_pass = time.monotonic() - started
                time.sleep(crowd.settle)
                peaks[label] = (rss_kib(controller.pid)[1], first_pass)
            finally:
                stop(controller)
    return peaks


def report_memory(result: Result, crowd: Crowd, measured: dict[str, tuple[int, float]]) -> None:
    """The memory table and goal."""
    peaks = {label: kib for label, (kib, _) in measured.items()}
    after = peaks["after"] / 1024
    rows = [[label, f"{kib / 1024:.0f}", f"{s:.1f}"] for label, (kib, s) in measured.items()]
    result.table(
        f"Controller peak RSS: {crowd.pods} pods in the namespace, "
        f"{crowd.crs * crowd.gateways} of them gateways of {crowd.crs} GatewaySyncs",
        ["controller", "peak RSS (MiB)", "first pass (s)"],
        rows,
    )
    label = f"controller peak RSS at {crowd.pods} pods, {crowd.crs * crowd.gateways} gateways"
    if "before" in peaks:  # within one run: the ratio holds on a loaded machine
        result.findings.append(
            f"Peak RSS at {crowd.pods} pods ({crowd.crs * crowd.gateways} gateways): "
            f"{after:.0f} MiB, {peaks['after'] / peaks['before']:.2f}× the "
            f"{peaks['before'] / 1024:.0f} MiB of the baseline (STOKER_BENCH_BASELINE) measured "
            "in the same run."
        )
        result.goal(f"{label}, × the baseline's", round(peaks["after"] / peaks["before"], 2), 0.5)
    else:
        result.goal(label, round(after, 1), MEMORY_BEFORE_MIB / 2, "MiB")


def histogram(url: str) -> dict[float, float]:
    """The reconcile-duration histogram summed over GatewaySyncs: {upper bound: count}."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[float, float] = {}
    pattern = re.compile(
        r'^stoker_controller_reconcile_duration_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)'
    )
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            bound = float("inf") if match[1] == "+Inf" else float(match[1])
            out[bound] = out.get(bound, 0.0) + float(match[2])
    return out


def quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-quantile."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return 0.0
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    """after - before, key by key."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def profile(pid: int, seconds: int) -> subprocess.Popen[bytes] | None:
    """With STOKER_BENCH_PROFILE=DIR: py-spy records the controller (on-CPU samples, without
    pausing it) into DIR/controller.json during the steady-state window."""
    where = os.environ.get("STOKER_BENCH_PROFILE")
    if not where:
        return None
    spy = str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(min(seconds, 60)), "--nonblocking",
         "--format", "raw", "-o", f"{where}/controller.txt"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


# What the controller reads or writes. kube-apiserver counts its own requests in the same metric
# (its service-IP and node-port repair loops LIST services every few minutes): those are not the
# controller's and not part of the goal.
CONTROLLER_RESOURCES = frozenset(
    {"gatewaysyncs", "configmaps", "pods", "secrets", "rolebindings", "events", "leases"}
)


def category(verb: str, resource: str) -> str:
    """What a request is, for the steady-state goal."""
    if verb == "WATCH":
        return "watch"
    if resource == "leases":
        return "lease"
    if resource == "events":
        return "event"
    if resource and resource not in CONTROLLER_RESOURCES:
        return "api server's own"
    return "other"


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--memory-only", action="store_true", help="only the memory run")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    crowd = MEMORY_QUICK if args.quick else MEMORY_FULL
    result = Result("controller", "Controller at scale", "bench/controller_bench.py", args.quick)
    if args.memory_only:
        report_memory(result, crowd, memory(crowd, f"{scale.interval}s"))
        result.write(args.out)
        return result.exit_code()
    with control_plane() as (work, plane, core, custom, namespace):
        api_key(core, namespace)
        heads = []
        for r in range(scale.repos):
            heads.append(git_repo(work / f"repo{r}"))
        interval = f"{scale.interval}s"
        setup = time.monotonic()
        for i in range(scale.crs):
            r = i % scale.repos
            cr = f"site-{i:03d}"
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                gatewaysync(cr, f"file://{work}/repo{r}", polling={"interval": interval}),
            )
            for g in range(scale.gateways):
                pod = core.create_namespaced_pod(
                    namespace, gateway_pod(f"{cr}-gw-{g}", cr, f"{cr}-gw-{g}")
                ).to_dict()
                core.create_namespaced_config_map(namespace, status_cm(cr, pod, heads[r]))
        setup_s = time.monotonic() - setup
        shim = work / "bin"
        shim.mkdir()
        import shutil

        (shim / "git").write_text(SHIM.format(git=shutil.which("git")))
        (shim / "git").chmod(stat.S_IRWXU)
        git_log = work / "ls-remote.log"
        git_log.touch()
        env = {
            **plane.subprocess_env(),
            "PATH": f"{shim}:{os.environ['PATH']}",
            "STOKER_BENCH_GIT_LOG": str(git_log),
        }
        port = free_port()
        metrics = f"http://127.0.0.1:{port}/metrics"
        started = time.monotonic()
        controller = stoker(
            ["controller", "--interval", interval, "--metrics-port", str(port),
             "--lease-namespace", namespace],
            env,
            work / "controller.log",
        )  # fmt: skip
        try:

            def converged() -> bool:
                items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
                done = 0
                for item in items["items"]:
                    conds = {c["type"]: c for c in item.get("status", {}).get("conditions", [])}
                    done += conds.get("AllGatewaysSynced", {}).get("status") == "True"
                return done == scale.crs

            wait_until(converged, 600, 1.0, "every GatewaySync to show its gateways synced")
            first_pass = time.monotonic() - started
            first_hist = histogram(metrics)
            # Let one full resync pass go by before measuring the steady state.
            time.sleep(scale.interval * 1.5)
            hist0, api0 = histogram(metrics), apiserver_requests(plane)
            first_calls = git_log.read_text().splitlines()
            calls0 = len(first_calls)
            spy = profile(controller.pid, scale.window)
            t0 = time.monotonic()
            time.sleep(scale.window)
            if spy:
                spy.wait()
            api1, hist1 = apiserver_requests(plane), histogram(metrics)
            window = time.monotonic() - t0
            calls = git_log.read_text().splitlines()[calls0:]
            peak_rss = rss_kib(controller.pid)[1]
        finally:
            stop(controller)
    report(result, scale, setup_s, first_pass, first_hist, delta(hist1, hist0),
           delta(api1, api0), window, calls, peak_rss)  # fmt: skip
    result.findings.append(
        f"`git ls-remote` calls before the steady state (first pass and one resync): "
        f"{len(first_calls)} for {scale.repos} repositories and {scale.crs} GatewaySyncs."
    )
    report_memory(result, crowd, memory(crowd, f"{scale.interval}s"))
    result.write(args.out)
    return result.exit_code()


def report(
    result: Result,
    scale: Scale,
    setup_s: float,
    first_pass: float,
    first_hist: dict[float, float],
    steady_hist: dict[float, float],
    requests: dict[tuple[str, str, str], float],
    window: float,
    calls: list[str],
    peak_rss: int,
) -> None:
    """Tables, goals and chart."""
    total = scale.crs * scale.gateways
    result.description = (
        f"{scale.crs} GatewaySyncs × {scale.gateways} gateway pods ({total} pods, {total} status "
        f"ConfigMaps) in one namespace, over {scale.repos} distinct repositories without "
        "credentials; `stoker controller` with leader election, resync and polling interval "
        f"{scale.interval} s (the chart's default is 60 s)."
    )
    result.conditions = {
        "objects": f"{scale.crs} GatewaySyncs, {total} pods, {total} status ConfigMaps",
        "created in": f"{setup_s:.0f} s before the controller started",
        "steady-state window": f"{window:.0f} s",
    }
    result.table(
        "Reconciles",
        ["phase", "reconciles", "p50 (ms)", "p95 (ms)"],
        [
            [phase, int(h.get(float("inf"), 0)), f"{quantile(h, 0.5) * 1000:.0f}",
             f"{quantile(h, 0.95) * 1000:.0f}"]
            for phase, h in (("first pass", first_hist), ("steady state", steady_hist))
        ],
    )  # fmt: skip
    result.findings.append(
        f"First pass: every GatewaySync showed its gateways synced {first_pass:.1f} s after the "
        f"controller started; peak RSS {peak_rss / 1024:.0f} MiB."
    )
    done = steady_hist.get(float("inf"), 0.0) * 60.0 / window
    result.findings.append(
        f"Steady state: {done:.0f} reconciles per minute, against the "
        f"{scale.crs * 60.0 / scale.interval:.0f} per minute a {scale.interval} s resync of "
        f"{scale.crs} GatewaySyncs asks for."
    )
    per_minute = 60.0 / window
    grouped: dict[tuple[str, str], float] = {}
    for (verb, resource, _code), count in requests.items():
        if count > 0:
            grouped[(verb, resource)] = grouped.get((verb, resource), 0.0) + count
    rows = sorted(grouped.items(), key=lambda kv: -kv[1])
    result.table(
        "API requests at steady state (all clients; nothing else runs)",
        ["verb", "resource", "kind", "requests", "per minute"],
        [[v, r or "(non-resource)", category(v, r), int(n), f"{n * per_minute:.1f}"]
         for (v, r), n in rows],
    )  # fmt: skip
    repos: dict[str, list[float]] = {}
    for line in calls:
        words = line.split()
        repos.setdefault(words[-1], []).append(float(words[0]))
    intervals = window / scale.interval

    def gaps(times: list[float]) -> str:
        spans = [b - a for a, b in itertools.pairwise(times)]
        return f"{min(spans):.1f}–{max(spans):.1f}" if spans else "–"

    result.table(
        "`git ls-remote` at steady state",
        ["repository", "calls", "per polling interval", "seconds between calls"],
        [[Path(u).name, len(t), f"{len(t) / intervals:.2f}", gaps(t)]
         for u, t in sorted(repos.items())]
        or [["(none)", 0, "0", "–"]],
    )  # fmt: skip
    # A poll: calls for one repository less than half an interval apart count once.
    duplicates = sum(
        b - a < scale.interval / 2 for t in repos.values() for a, b in itertools.pairwise(t)
    )
    polls = (len(calls) - duplicates) / intervals / scale.repos
    # The window's edges may cut one poll per repository in or out: hence the tolerance.
    result.goal(
        "polls (ls-remote) per polling interval per repository and credentials",
        polls,
        1.0,
        "",
        op="==",
        tolerance=1 / intervals + 0.01,
    )
    result.goal(
        "duplicate ls-remote calls (same repository within half an interval)", duplicates, 0, ""
    )
    beyond = (
        sum(n for (v, r), n in grouped.items() if category(v, r) == "other" and r != "")
        * per_minute
    )
    result.goal(
        "API requests per minute beyond watches, Lease renewals and events",
        beyond,
        0,
        unit="",
    )
    result.chart(
        Chart(
            file="controller-requests.png",
            title=f"API requests per minute at steady state, {scale.crs} GatewaySyncs × "
            f"{scale.gateways} gateways",
            kind="bar",
            xlabel="",
            ylabel="requests per minute",
            series={
                "requests": {
                    "x": [f"{v}\n{r or 'other'}" for (v, r), _ in rows[:8]],
                    "y": [round(n * per_minute, 1) for _, n in rows[:8]],
                }
            },
        )
    )


if __name__ == "__main__":
    sys.exit(main())
