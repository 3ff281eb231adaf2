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


@pytest.mark.parametrize(
    ("progressing", "rollout", "command"),
    [
        (
            ("Unknown", "AwaitingApproval", "past step test waits for an approval of commit C"),
            {"awaiting": "pause:test", "pendingCommit": "C"},
            "stoker approve minimal CCCCCCCCCCCC --pause test -n NS",
        ),
        (
            ("Unknown", "AwaitingApproval", "step line-1 waits for an approval of commit C"),
            {"awaiting": "step:line-1", "pendingCommit": "C"},
            "stoker approve minimal CCCCCCCCCCCC --step line-1 -n NS",
        ),
        (
            ("False", "RolloutHalted", "gateway gw-2 failed commit C: rejected"),
            {"awaiting": "", "pendingCommit": ""},
            "stoker rollout resume minimal -n NS",
        ),
        (("True", "RolloutProgressing", "commit C: step 1/2 test: 0 of 1 gateway(s) done"), {}, ""),
    ],
    ids=["pause", "step", "halted", "moving"],
)
def test_status_shows_the_rollout_and_the_command_that_moves_it_on(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    progressing: tuple[str, str, str],
    rollout: dict[str, str],
    command: str,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    commit = "c" * 40
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    status, reason, message = progressing
    record = {k: v.replace("C", commit) for k, v in rollout.items()}
    condition = {
        "type": "Progressing",
        "status": status,
        "reason": reason,
        "message": message.replace("C", commit),
        "lastTransitionTime": "2026-11-27T00:00:00Z",
    }
    body = {"status": {"conditions": [condition]}}
    if record:
        body["status"]["rollout"] = {"commit": commit, "baseline": "b" * 40, **record}
    custom.patch_namespaced_custom_object_status(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal", body
    )
    base = [sys.executable, "-m", "stoker_agent.cli", "status", "-n", kube_namespace]
    env = {**kube_env.subprocess_env(), "NO_COLOR": "1"}
    done = subprocess.run([*base, "-o", "json"], capture_output=True, text=True, env=env)
    [row] = json.loads(done.stdout)["gatewaysyncs"]
    wanted = command.replace("NS", kube_namespace).replace("C" * 12, commit[:12])
    assert row["rollout"] == {"reason": reason, "message": condition["message"], "next": wanted}
    assert not any(p.startswith("Progressing") for p in row["problems"])  # said once
    text = subprocess.run(base, capture_output=True, text=True, env=env, check=True).stdout
    assert f"    > rollout: {reason}: {condition['message']}" in text
    assert (f"      to go on: {wanted}" in text) == bool(wanted)
