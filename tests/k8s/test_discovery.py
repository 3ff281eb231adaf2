"""Gateway discovery on the real API server: which pods count as a GatewaySync's gateways (the
annotation `stoker.io/cr-name` alone, scheduled and not terminal, auto-discovery only with one
GatewaySync in the namespace) and the names they get (issue 16, item 1)."""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from k8s.test_missing_secrets import api_key_secret
from stoker_k8s.controller import Controller
from stoker_k8s.manager import Manager
from support.gitservers import BareRepo
from support.kubeenv import wait_until

pytestmark = pytest.mark.kube
HOLD = "stoker.test/hold"  # a finalizer that keeps a deleted pod visible with its deletionTimestamp


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name
    )


@pytest.fixture
def custom(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def repo(tmp_path: Path) -> str:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    return f"file://{tmp_path / 'config.git'}"


def make_gs(custom: client.CustomObjectsApi, namespace: str, repo: str, name: str) -> None:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = name
    body["spec"]["git"]["repo"] = repo
    api_key_secret(custom.api_client, namespace)
    custom.create_namespaced_custom_object("stoker.io", "v1alpha1", namespace, "gatewaysyncs", body)


def make_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    phase: str | None = "Running",
    node: str | None = "node-1",
    sidecar: bool = False,
    owner: tuple[str, str] | None = None,
    finalizers: list[str] | None = None,
    reason: str | None = None,
) -> Any:
    """A pod as the scheduler and kubelet would leave it: bound to `node`, in `phase`."""
    meta: dict[str, Any] = {
        "name": name,
        "annotations": annotations or {},
        "labels": labels or {},
        "finalizers": finalizers or [],
    }
    if owner is not None:
        kind, owner_name = owner
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": kind,
                "name": owner_name,
                "uid": f"00000000-0000-0000-0000-{abs(hash(owner_name)) % 10**12:012d}",
                "controller": True,
            }
        ]
    spec: dict[str, Any] = {"containers": [{"name": "gateway", "image": "ignition"}]}
    if node:
        spec["nodeName"] = node
    if sidecar:
        spec["initContainers"] = [
            {"name": "stoker-agent", "image": "agent", "restartPolicy": "Always"}
        ]
    pod = core.create_namespaced_pod(namespace, {"metadata": meta, "spec": spec})
    if phase is not None:
        status: dict[str, Any] = {"phase": phase}
        if reason:
            status["reason"] = reason
        core.patch_namespaced_pod_status(name, namespace, {"status": status})
    return pod


def head_of(repo: str) -> str:
    """The commit the controller resolves and publishes for `repo` (its HEAD)."""
    listed = subprocess.run(
        ["git", "ls-remote", repo, "HEAD"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[0]


def report_synced(core: client.CoreV1Api, namespace: str, cr: str, pod: Any, commit: str) -> None:
    """The agent's status ConfigMap saying the pod is synced at `commit` (a gateway is Synced
    only at the commit published for it)."""
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": f"stoker-status-{cr}-{pod.metadata.name}",
                "labels": {"stoker.io/cr-name": cr, "app.kubernetes.io/managed-by": "stoker-agent"},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod.metadata.name,
                        "uid": pod.metadata.uid,
                    }
                ],
            },
            "data": {"status.json": json.dumps({"result": "Synced", "commit": commit})},
        },
    )


def gateways(custom: client.CustomObjectsApi, namespace: str, cr: str) -> dict[str, str]:
    """podName → name of the gateways in the GatewaySync's status."""
    found = get(custom, namespace, cr)["status"]["discoveredGateways"]
    return {g["podName"]: g["name"] for g in found}


def condition(custom: client.CustomObjectsApi, namespace: str, cr: str, kind: str) -> Any:
    conditions = get(custom, namespace, cr)["status"]["conditions"]
    return next((c for c in conditions if c["type"] == kind), None)


@pytest.fixture
def held(kube_core: client.CoreV1Api, kube_namespace: str) -> Iterator[list[str]]:
    """Names of pods created with the HOLD finalizer: released after the test."""
    names: list[str] = []
    yield names
    for name in names:
        kube_core.patch_namespaced_pod(name, kube_namespace, {"metadata": {"finalizers": []}})


def test_a_running_pod_annotated_only_with_cr_name_is_discovered(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    make_gs(custom, kube_namespace, repo, "plant")
    make_pod(kube_core, kube_namespace, "gw-0", annotations={"stoker.io/cr-name": "plant"})
    make_pod(kube_core, kube_namespace, "other-0", annotations={"stoker.io/cr-name": "other"})
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace, "plant"))
    assert gateways(custom, kube_namespace, "plant") == {"gw-0": "gw-0"}
    assert condition(custom, kube_namespace, "plant", "AllGatewaysSynced")["message"] == (
        "0/1 synced (1 missing sidecar)"
    )


def test_a_scheduled_pod_whose_agent_is_on_its_first_sync_is_a_syncing_gateway(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    make_gs(custom, kube_namespace, repo, "plant")
    notes = {"stoker.io/cr-name": "plant", "stoker.io/inject": "true"}
    # Bound to a node, its gateway container waits for the agent's first sync: phase Pending.
    make_pod(kube_core, kube_namespace, "gw-0", annotations=notes, phase="Pending", sidecar=True)
    # Not scheduled yet: no node, nothing runs; not a gateway yet.
    make_pod(kube_core, kube_namespace, "gw-1", annotations=notes, phase="Pending", node=None)
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace, "plant"))
    [found] = get(custom, kube_namespace, "plant")["status"]["discoveredGateways"]
    assert (found["podName"], found["syncStatus"]) == ("gw-0", "Pending")
    assert condition(custom, kube_namespace, "plant", "AllGatewaysSynced")["reason"] == (
        "SyncInProgress"
    )


def test_failed_succeeded_evicted_and_deleted_pods_drop_out_so_the_rest_is_ready(
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: str,
    held: list[str],
) -> None:
    make_gs(custom, kube_namespace, repo, "plant")
    notes = {"stoker.io/cr-name": "plant", "stoker.io/inject": "true"}
    live = make_pod(kube_core, kube_namespace, "gw-0", annotations=notes, sidecar=True)
    report_synced(kube_core, kube_namespace, "plant", live, head_of(repo))
    make_pod(kube_core, kube_namespace, "failed", annotations=notes, phase="Failed", sidecar=True)
    make_pod(kube_core, kube_namespace, "done", annotations=notes, phase="Succeeded", sidecar=True)
    make_pod(
        kube_core,
        kube_namespace,
        "evicted",
        annotations=notes,
        phase="Failed",
        reason="Evicted",
        sidecar=True,
    )
    make_pod(
        kube_core, kube_namespace, "leaving", annotations=notes, sidecar=True, finalizers=[HOLD]
    )
    held.append("leaving")
    kube_core.delete_namespaced_pod("leaving", kube_namespace)  # stays, with deletionTimestamp
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace, "plant"))
    assert gateways(custom, kube_namespace, "plant") == {"gw-0": "gw-0"}
    assert (
        condition(custom, kube_namespace, "plant", "AllGatewaysSynced")["message"] == "1/1 synced"
    )
    assert condition(custom, kube_namespace, "plant", "Ready")["status"] == "True"


def test_a_pod_without_cr_name_is_claimed_only_when_its_namespace_has_one_gatewaysync(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    make_gs(custom, kube_namespace, repo, "line-1")
    make_gs(custom, kube_namespace, repo, "line-2")
    make_pod(kube_core, kube_namespace, "gw-0", annotations={"stoker.io/inject": "true"})
    controller = Controller(kube_core, custom)
    for cr in ("line-1", "line-2"):
        controller.reconcile(get(custom, kube_namespace, cr))
        assert gateways(custom, kube_namespace, cr) == {}, cr
    custom.patch_namespaced_custom_object(  # let line-2 go without its finalizer
        "stoker.io",
        "v1alpha1",
        kube_namespace,
        "gatewaysyncs",
        "line-2",
        {"metadata": {"finalizers": []}},
    )
    custom.delete_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "line-2"
    )
    controller.reconcile(get(custom, kube_namespace, "line-1"))
    assert gateways(custom, kube_namespace, "line-1") == {"gw-0": "gw-0"}


CHART = {"app.kubernetes.io/name": "ignition", "app.kubernetes.io/instance": "plant1"}


def stateful(base: dict[str, str], pod: str, index: int) -> dict[str, str]:
    """Labels the StatefulSet controller adds to its pod number `index`."""
    return {
        **base,
        "statefulset.kubernetes.io/pod-name": pod,
        "apps.kubernetes.io/pod-index": str(index),
    }


def test_ignition_chart_pods_are_named_by_release_and_a_redundant_pair_gets_distinct_names(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    make_gs(custom, kube_namespace, repo, "plant")
    notes = {"stoker.io/cr-name": "plant"}
    sts = ("StatefulSet", "plant1-ignition")
    for index in (0, 1):
        pod = f"plant1-ignition-{index}"
        make_pod(
            kube_core,
            kube_namespace,
            pod,
            annotations=notes,
            labels=stateful(CHART, pod, index),
            owner=sts,
        )
    make_pod(
        kube_core,
        kube_namespace,
        "north-0",
        annotations={**notes, "stoker.io/gateway-name": "north"},
        labels=CHART,
    )
    make_pod(
        kube_core,
        kube_namespace,
        "south-0",
        annotations=notes,
        labels={"app.kubernetes.io/name": "south"},
    )
    make_pod(
        kube_core,
        kube_namespace,
        "bare-0",
        annotations=notes,
        labels={"app.kubernetes.io/name": "ignition"},
    )
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace, "plant"))
    assert gateways(custom, kube_namespace, "plant") == {
        "plant1-ignition-0": "plant1",
        "plant1-ignition-1": "plant1-1",
        "north-0": "north",
        "south-0": "south",
        "bare-0": "ignition",
    }
    assert condition(custom, kube_namespace, "plant", "GatewayNamesUnique")["status"] == "True"


def test_two_statefulsets_resolving_to_one_gateway_name_raise_a_condition_naming_both(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    make_gs(custom, kube_namespace, repo, "plant")
    notes = {"stoker.io/cr-name": "plant"}
    for owner in ("blue", "green"):
        pod = f"{owner}-0"
        make_pod(
            kube_core,
            kube_namespace,
            pod,
            annotations=notes,
            labels=stateful(CHART, pod, 0),
            owner=("StatefulSet", owner),
        )
    # A Deployment's two ReplicaSets during a rollout are one owner, not a conflict.
    for replicaset in ("edge-5d8f9", "edge-7c6b4"):
        make_pod(
            kube_core,
            kube_namespace,
            f"{replicaset}-x",
            annotations={**notes, "stoker.io/gateway-name": "edge"},
            labels={"pod-template-hash": replicaset.split("-")[1]},
            owner=("ReplicaSet", replicaset),
        )
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace, "plant"))
    unique = condition(custom, kube_namespace, "plant", "GatewayNamesUnique")
    assert (unique["status"], unique["reason"]) == ("False", "GatewayNameConflict")
    assert "StatefulSet blue" in unique["message"]
    assert "StatefulSet green" in unique["message"]
    assert '"plant1"' in unique["message"]
    assert "edge" not in unique["message"]
    ready = condition(custom, kube_namespace, "plant", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "GatewayNameConflict")


def test_the_controller_names_a_gateway_as_its_agent_was_told(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    """A pod injected by an earlier release keeps the name its agent uses until it is recreated."""
    make_gs(custom, kube_namespace, repo, "plant")
    kube_core.create_namespaced_pod(
        kube_namespace,
        {
            "metadata": {
                "name": "old-0",
                "annotations": {"stoker.io/cr-name": "plant"},
                "labels": CHART,
            },
            "spec": {
                "nodeName": "node-1",
                "initContainers": [
                    {
                        "name": "stoker-agent",
                        "image": "agent",
                        "restartPolicy": "Always",
                        "env": [{"name": "GATEWAY_NAME", "value": "ignition"}],
                    }
                ],
                "containers": [{"name": "gateway", "image": "ignition"}],
            },
        },
    )
    kube_core.patch_namespaced_pod_status("old-0", kube_namespace, {"status": {"phase": "Running"}})
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace, "plant"))
    assert gateways(custom, kube_namespace, "plant") == {"old-0": "ignition"}


@pytest.fixture
def manager(kube_api: client.ApiClient, kube_core: client.CoreV1Api) -> Iterator[Manager]:
    """The controller's manager (informers, queue, workers) running in this process."""
    running = Manager(Controller(kube_core, client.CustomObjectsApi(kube_api)), workers=2)
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(timeout=30)


def test_the_running_controller_follows_pods_through_their_watch_events_once_per_change(
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: str,
    manager: Manager,
) -> None:
    """Polling off: only pod events bring these changes in; each is recorded once."""
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = "plant"
    body["spec"]["git"]["repo"] = repo
    body["spec"]["polling"] = {"enabled": False}
    api_key_secret(custom.api_client, kube_namespace)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )

    def names() -> dict[str, str] | None:
        status = get(custom, kube_namespace, "plant").get("status")
        return (
            None
            if status is None
            else {g["podName"]: g["name"] for g in status["discoveredGateways"]}
        )

    wait_until(lambda: names() == {}, timeout=30, what="the first pass")
    make_pod(kube_core, kube_namespace, "gw-0", annotations={"stoker.io/cr-name": "plant"})
    wait_until(lambda: names() == {"gw-0": "gw-0"}, timeout=30, what="a cr-name-only pod")
    kube_core.patch_namespaced_pod_status("gw-0", kube_namespace, {"status": {"phase": "Failed"}})
    wait_until(lambda: names() == {}, timeout=30, what="the failed pod to drop out")
    make_pod(kube_core, kube_namespace, "auto-0", annotations={"stoker.io/inject": "true"})
    wait_until(lambda: names() == {"auto-0": "auto-0"}, timeout=30, what="the sole GatewaySync")
    events = [
        e.reason
        for e in kube_core.list_namespaced_event(kube_namespace).items
        if e.involved_object.name == "plant"
    ]
    # First pass: ProfilesValid, SecretsFound, RefResolved, NoGatewaysDiscovered, Reconciling;
    # each pod that appears: SyncInProgress, SidecarMissing, GatewayNamesUnique; the failed one
    # leaving: NoGatewaysDiscovered.
    assert sorted(events) == sorted(
        ["ProfilesValid", "SecretsFound", "RefResolved", "Reconciling", "NoGatewaysDiscovered"]
        + ["SyncInProgress", "SidecarMissing", "GatewayNamesUnique"] * 2
        + ["NoGatewaysDiscovered"]
    )
