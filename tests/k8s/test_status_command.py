"""`stoker status` reads the fleet from the API server, for people and for scripts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube


def test_status_lists_gatewaysyncs_gateways_and_problems(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = copy.deepcopy(MINIMAL)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    custom.patch_namespaced_custom_object_status(
        "stoker.io",
        "v1alpha1",
        kube_namespace,
        "gatewaysyncs",
        "minimal",
        {
            "status": {
                "lastSyncRef": "main",
                "lastSyncCommitShort": "abc1234",
                "discoveredGateways": [
                    {
                        "name": "ignition-blue",
                        "namespace": kube_namespace,
                        "podName": "ignition-blue-0",
                        "syncStatus": "Error",
                    }
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "Reconciling",
                        "message": "Waiting for gateways to sync",
                        "lastTransitionTime": "2026-11-27T00:00:00Z",
                    },
                    {
                        "type": "AllGatewaysSynced",
                        "status": "False",
                        "reason": "SyncInProgress",
                        "message": "0/1 synced",
                        "lastTransitionTime": "2026-11-27T00:00:00Z",
                    },
                ],
            }
        },
    )
    base = [sys.executable, "-m", "stoker_agent.cli", "status", "-n", kube_namespace]
    env = kube_env.subprocess_env()
    report = json.loads(
        subprocess.run(
            [*base, "-o", "json"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    [row] = report["gatewaysyncs"]
    assert (row["name"], row["ref"], row["commit"], row["ready"]) == (
        "minimal",
        "main",
        "abc1234",
        "False",
    )
    assert row["discovered"][0]["syncStatus"] == "Error"
    assert "AllGatewaysSynced: 0/1 synced" in row["problems"]
    text = subprocess.run(base, capture_output=True, text=True, env=env, check=True).stdout
    assert "minimal" in text
    assert "ignition-blue (ignition-blue-0): Error" in text
