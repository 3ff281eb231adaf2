"""The real control plane for benchmarks (the tests' kube-apiserver + etcd), GatewaySyncs and
gateway pods made directly in the API server, and Stoker processes run as local processes."""

from __future__ import annotations

import contextlib
import copy
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.kubeenv import PROJECT_CRD_DIR, ControlPlane, resolve_assets  # noqa: E402

GROUP, VERSION, PLURAL = "stoker.io", "v1alpha1", "gatewaysyncs"


def gatewaysync(name: str, repo: str, **spec: Any) -> dict[str, Any]:
    """A GatewaySync with one `default` profile mapping `projects` to `projects`."""
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GatewaySync",
        "metadata": {"name": name},
        "spec": {
            "git": {"repo": repo, "ref": "main"},
            "gateway": {"api": {"secretName": "ignition-api-key"}},
            "sync": {
                "profiles": {
                    "default": {"mappings": [{"source": "projects", "destination": "projects"}]}
                }
            },
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def gateway_pod(name: str, cr: str, gateway: str) -> dict[str, Any]:
    """A gateway pod as the webhook leaves it: annotations and the agent sidecar, bound to a
    node (no kubelet runs, so it stays Pending: a gateway whose agent is syncing; the
    controller only reads it)."""
    return {
        "metadata": {
            "name": name,
            "annotations": {
                "stoker.io/inject": "true",
                "stoker.io/cr-name": cr,
                "stoker.io/profile": "default",
                "stoker.io/gateway-name": gateway,
            },
        },
        "spec": {
            "nodeName": "bench-node",  # scheduled: the controller discovers only scheduled pods
            "initContainers": [
                {"name": "stoker-agent", "image": "stoker", "restartPolicy": "Always"}
            ],
            "containers": [{"name": "gateway", "image": "ignition"}],
        },
    }


@contextlib.contextmanager
def control_plane() -> Iterator[tuple[Path, ControlPlane, Any, Any, str]]:
    """Start etcd + kube-apiserver with the CRDs; yield (an empty work directory, the plane,
    admin CoreV1Api, admin CustomObjectsApi, a namespace), all removed afterwards."""
    from kubernetes import client

    with tempfile.TemporaryDirectory(prefix="stoker-bench-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        plane = ControlPlane(Path(tmp) / "kube", resolve_assets())
        plane.start()
        try:
            with plane.api_client() as api:
                plane.install_crds(api, [PROJECT_CRD_DIR])
                namespace = plane.create_namespace(api, "bench")
                yield work, plane, client.CoreV1Api(api), client.CustomObjectsApi(api), namespace
        finally:
            plane.stop()


def stoker(
    args: list[str], env: dict[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `stoker <args>` as a local process (output to `log`, else discarded)."""
    out: Any = log.open("wb") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "stoker_agent.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log:
            out.close()


def apiserver_requests(plane: ControlPlane) -> dict[tuple[str, str, str], float]:
    """`apiserver_request_total` from the API server's /metrics: {(verb, resource, code): n}."""
    ctx = ssl.create_default_context(cafile=str(plane.ca_file))
    ctx.load_cert_chain(plane.admin_cert, plane.admin_key)
    with urllib.request.urlopen(f"{plane.server}/metrics", timeout=10, context=ctx) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(
            part.split("=", 1) for part in labels_text.replace('"', "").split(",") if "=" in part
        )
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("code", ""))
        out[key] = out.get(key, 0.0) + float(value)
    return out


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc."""
    current = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return current, peak


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds a process has used so far (with `children`: plus those of its
    children it waited for, e.g. the git processes of an agent)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")
