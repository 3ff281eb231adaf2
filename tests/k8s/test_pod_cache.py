"""The controller's pod informer on the real API server keeps stripped copies of pods: only the
fields discovery and status read, listed page by page and updated from watch events, never a
container spec, env, volumes or foreign annotations (issue 16 item 9)."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import pytest
from kubernetes import client

from stoker_k8s import pods, runtime
from stoker_k8s.runtime import Informer
from support.kubeenv import wait_until

pytestmark = pytest.mark.kube

SECRET = "env-value-the-cache-must-not-hold"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def fat_pod(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A pod as real workloads carry them: env, volumes, several containers, big annotations."""
    container = {
        "name": "gateway",
        "image": "inductiveautomation/ignition:8.3",
        "env": [{"name": f"VAR_{i}", "value": f"{SECRET}-{i}"} for i in range(20)],
        "volumeMounts": [{"name": "data", "mountPath": "/usr/local/bin/ignition/data"}],
        "args": ["-n", "gateway", "-m", "1024"],
    }
    return {
        "metadata": {
            "name": name,
            "annotations": {**annotations, LAST_APPLIED: "x" * 20_000},
            "labels": {"app.kubernetes.io/name": "ignition", "team": "plant-1"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "plant",
                 "uid": "00000000-0000-0000-0000-000000000001", "controller": True}
            ],
        },
        "spec": {
            "nodeName": "node-1",
            "serviceAccountName": "gateway",
            "initContainers": [
                {"name": "stoker-agent", "image": "stoker", "restartPolicy": "Always",
                 "env": [{"name": "GATEWAY_NAME", "value": "told"},
                         {"name": "TOKEN", "value": SECRET}]}
            ],
            "containers": [container, {**container, "name": "exporter"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }  # fmt: skip


def test_the_pod_informer_keeps_only_what_discovery_needs_listed_in_pages_and_watched(
    kube_core: client.CoreV1Api, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "PAGE", 2)  # 5 pods: three pages
    kube_core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "gateway"}})
    for i in range(4):
        kube_core.create_namespaced_pod(
            kube_namespace, fat_pod(f"gw-{i}", {"stoker.io/cr-name": "site"})
        )
    kube_core.create_namespaced_pod(kube_namespace, fat_pod("plain", {}))  # no annotation
    calls: list[dict[str, Any]] = []

    def listing(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("watch"):
            calls.append(kwargs)
        return kube_core.list_namespaced_pod(*args, **kwargs)

    events: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def on_event(kind: str, obj: Any) -> None:
        with lock:
            events.append((kind, obj))

    informer = Informer(
        listing, on_event, strip=pods.strip, watch_timeout=5, namespace=kube_namespace
    ).start()
    try:
        assert informer.synced.wait(30)
        assert [c.get("limit") for c in calls] == [2, 2, 2]
        assert [bool(c.get("_continue")) for c in calls] == [False, True, True]
        kube_core.create_namespaced_pod(  # arrives through the watch
            kube_namespace, fat_pod("gw-late", {"stoker.io/cr-name": "site"})
        )
        wait_until(lambda: informer.lookup(kube_namespace, "gw-late") is not None, 30, 0.2,
                   "the watched pod in the cache")  # fmt: skip
        cached = informer.cached(kube_namespace)
    finally:
        informer.stop()
    assert sorted(p.name for p in cached) == ["gw-0", "gw-1", "gw-2", "gw-3", "gw-late", "plain"]
    for pod in [*cached, *(obj for _, obj in events)]:
        assert isinstance(pod, pods.Pod)  # not a V1Pod, not the JSON
        assert SECRET not in repr(pod)
        assert "volume" not in repr(pod).lower()
        assert "ignition:8.3" not in repr(pod)
        assert LAST_APPLIED not in pod.annotations
        # A pod with a stoker.io/ annotation may be a gateway: a rollout step may select it by
        # any label; another pod keeps only the labels the gateway-name rule reads.
        team = {"team": "plant-1"} if pod.annotations else {}
        assert pod.labels == {"app.kubernetes.io/name": "ignition", **team}
    late = informer.lookup(kube_namespace, "gw-late")
    assert attrs.asdict(late) == {
        "namespace": kube_namespace, "name": "gw-late", "uid": late.uid,
        "annotations": {"stoker.io/cr-name": "site"},
        "labels": {"app.kubernetes.io/name": "ignition", "team": "plant-1"},
        "phase": "Pending", "node": "node-1", "deleting": False, "service_account": "gateway",
        "owners": (("StatefulSet", "plant"),), "agent": True, "told_name": "told",
    }  # fmt: skip
