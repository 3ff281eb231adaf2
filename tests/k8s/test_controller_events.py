"""Events on the real API server: one per real change, computed from what the controller last
wrote, not from a cached copy that lags its own status write; a GatewaySync that vanishes in
the middle of a reconcile is no error (issue 16, item 4)."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_controller_metrics import series_of
from k8s.test_crd import MINIMAL
from k8s.test_missing_secrets import api_key_secret
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo

pytestmark = pytest.mark.kube


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name
    )


def create(custom: client.CustomObjectsApi, namespace: str, tmp_path: Path) -> None:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    api_key_secret(custom.api_client, namespace)
    custom.create_namespaced_custom_object("stoker.io", "v1alpha1", namespace, "gatewaysyncs", body)


def recorded(core: client.CoreV1Api, namespace: str) -> list[tuple[str, str]]:
    events = core.list_namespaced_event(namespace).items
    return sorted((e.reason, e.type) for e in events if e.involved_object.name == "minimal")


def synced_pod(core: client.CoreV1Api, namespace: str, commit: str) -> None:
    """A gateway pod whose agent reports Synced at `commit` (the published one, to count)."""
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "gw-0", "annotations": {"stoker.io/cr-name": "minimal"}},
            "spec": {
                "nodeName": "node-1",
                "initContainers": [
                    {"name": "stoker-agent", "image": "agent", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "gateway", "image": "ignition"}],
            },
        },
    )
    core.patch_namespaced_pod_status("gw-0", namespace, {"status": {"phase": "Running"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "stoker-status-minimal-gw-0",
                "labels": {
                    "stoker.io/cr-name": "minimal",
                    "app.kubernetes.io/managed-by": "stoker-agent",
                },
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": "gw-0", "uid": pod.metadata.uid}
                ],
            },
            "data": {"status.json": json.dumps({"result": "Synced", "commit": commit})},
        },
    )


def test_reconciles_on_a_copy_older_than_the_last_status_write_record_each_change_once(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    create(custom, kube_namespace, tmp_path)
    controller = Controller(kube_core, custom)
    # The informer's copy, taken before the first status write, as a quick second pass (an
    # agent's report, a pod event) finds it when the watch has not delivered that write yet.
    stale = get(custom, kube_namespace, "minimal")
    controller.reconcile(copy.deepcopy(stale))
    first = recorded(kube_core, kube_namespace)
    assert (
        first
        == [
            ("NoGatewaysDiscovered", "Normal"),
            ("Reconciling", "Warning"),
            ("RefResolved", "Normal"),
            ("ProfilesValid", "Normal"),
            ("SecretsFound", "Normal"),
        ]
        or len(first) == 5
    )
    written = get(custom, kube_namespace, "minimal")["status"]
    controller.reconcile(copy.deepcopy(stale))
    assert recorded(kube_core, kube_namespace) == first  # nothing changed: no event
    assert get(custom, kube_namespace, "minimal")["status"] == written  # nor any transition time
    synced_pod(kube_core, kube_namespace, written["lastSyncCommit"])
    for _ in range(2):
        controller.reconcile(copy.deepcopy(stale))
    changes = sorted(set(recorded(kube_core, kube_namespace)) - set(first))
    assert changes == [
        ("GatewayNamesUnique", "Normal"),
        ("SidecarPresent", "Normal"),
        ("SyncSucceeded", "Normal"),
    ]  # AllGatewaysSynced and Ready both turn True with the reason SyncSucceeded
    assert len(recorded(kube_core, kube_namespace)) == len(first) + 4


def test_a_gatewaysync_deleted_before_its_finalizer_is_added_is_no_error(
    kube_core: client.CoreV1Api,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    create(custom, kube_namespace, tmp_path)
    cached = get(custom, kube_namespace, "minimal")  # what the informer holds
    custom.delete_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )  # no finalizer yet: gone at once
    controller = Controller(kube_core, custom)
    with caplog.at_level(logging.INFO):
        done = controller.reconcile(cached)
    assert done.gone
    assert series_of(controller, kube_namespace, "minimal") == []  # none outlives it (B21)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any(r.exc_info for r in caplog.records)
    names = [cm.metadata.name for cm in kube_core.list_namespaced_config_map(kube_namespace).items]
    assert "stoker-metadata-minimal" not in names  # nothing published for a deleted GatewaySync


def test_a_gatewaysync_deleted_during_its_reconcile_is_no_error(
    kube_core: client.CoreV1Api,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    create(custom, kube_namespace, tmp_path)
    controller = Controller(kube_core, custom)
    controller.reconcile(get(custom, kube_namespace, "minimal"))  # finalizer added
    cached = get(custom, kube_namespace, "minimal")
    custom.patch_namespaced_custom_object(
        "stoker.io",
        "v1alpha1",
        kube_namespace,
        "gatewaysyncs",
        "minimal",
        {"metadata": {"finalizers": []}},
    )
    custom.delete_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )
    cached["spec"]["paused"] = True  # a status write is due: it finds the object gone
    with caplog.at_level(logging.INFO):
        done = controller.reconcile(cached)
    assert done.gone
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert series_of(controller, kube_namespace, "minimal") == []


def test_a_gatewaysync_in_a_namespace_not_served_gets_its_status_and_no_event(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    """The installation holds no rights there (H16): not even to record an event."""
    custom = client.CustomObjectsApi(kube_api)
    create(custom, kube_namespace, tmp_path)
    controller = Controller(kube_core, custom, namespaces=["elsewhere"])
    controller.reconcile(get(custom, kube_namespace, "minimal"))
    ready = next(
        c
        for c in get(custom, kube_namespace, "minimal")["status"]["conditions"]
        if c["type"] == "Ready"
    )
    assert ready["reason"] == "NamespaceNotServed"
    assert recorded(kube_core, kube_namespace) == []
