"""The original's bugs that the controller fixed, one test each on the real API server, named
after the bug's id in the behaviour reference (§12.2): B2, B5, B6, B8, B22, B25."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import git
from k8s.test_crd import MINIMAL
from k8s.test_discovery import make_pod, manager  # noqa: F401  (manager: a fixture)
from k8s.test_missing_secrets import api_key_secret
from stoker_k8s.controller import Controller
from stoker_k8s.manager import Manager
from support.gitservers import BareRepo, GitHttpServer
from support.kubeenv import wait_until

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")


def get(custom: client.CustomObjectsApi, namespace: str, name: str = "plant") -> dict[str, Any]:
    return custom.get_namespaced_custom_object(*GS, namespace, "gatewaysyncs", name)


def make_gs(
    custom: client.CustomObjectsApi, namespace: str, repo: str, **spec: Any
) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = "plant"
    body["spec"]["git"]["repo"] = repo
    body["spec"].update(spec)
    return custom.create_namespaced_custom_object(*GS, namespace, "gatewaysyncs", body)


def report(
    core: client.CoreV1Api, namespace: str, pod: Any, commit: str, result: str = "Synced"
) -> None:
    """What the pod's agent writes after a sync: its status ConfigMap, owned by the pod."""
    name = f"stoker-status-plant-{pod.metadata.name}"
    body = {
        "metadata": {
            "name": name,
            "labels": {"stoker.io/cr-name": "plant",
                       "app.kubernetes.io/managed-by": "stoker-agent"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                 "uid": pod.metadata.uid}
            ],
        },
        "data": {"status.json": json.dumps({"result": result, "commit": commit, "ref": "main"})},
    }  # fmt: skip
    if name in {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}:
        core.replace_namespaced_config_map(name, namespace, body)
    else:
        core.create_namespaced_config_map(namespace, body)


def standing(custom: client.CustomObjectsApi, namespace: str) -> dict[str, str]:
    """podName → syncStatus, as the GatewaySync's status shows them."""
    found = (get(custom, namespace).get("status") or {}).get("discoveredGateways") or []
    return {g["podName"]: g["syncStatus"] for g in found}


def condition(custom: client.CustomObjectsApi, namespace: str, kind: str) -> dict[str, Any]:
    conditions = get(custom, namespace)["status"]["conditions"]
    return next(c for c in conditions if c["type"] == kind)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[str, str]:
    """A local repository (file:// URL) and its HEAD."""
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    return f"file://{tmp_path / 'config.git'}", git(tmp_path / "config.git", "rev-parse", "HEAD")


def test_b2_switching_to_another_ref_at_the_same_commit_updates_the_ref_and_keeps_the_cache(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    """The original updated lastSyncRef only with a new commit: the Ref column stayed stale
    and its ls-remote cache missed on every pass."""
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    head = git(tmp_path / "config.git", "rev-parse", "HEAD")
    git(tmp_path / "config.git", "tag", "v1.0.0", head)  # the same commit as main
    custom = client.CustomObjectsApi(kube_api)
    with GitHttpServer(tmp_path, "git", "pw", require_auth=False) as server:
        make_gs(custom, kube_namespace, server.url_for("config"))
        controller = Controller(kube_core, custom)
        controller.reconcile(get(custom, kube_namespace))
        assert get(custom, kube_namespace)["status"]["lastSyncRef"] == "main"
        custom.patch_namespaced_custom_object(
            *GS, kube_namespace, "gatewaysyncs", "plant", {"spec": {"git": {"ref": "v1.0.0"}}}
        )
        controller.reconcile(get(custom, kube_namespace))
        status = get(custom, kube_namespace)["status"]
        assert (status["lastSyncRef"], status["lastSyncCommit"]) == ("v1.0.0", head)
        calls = sum(1 for r in server.requests if "info/refs" in r.target)
        for _ in range(3):
            controller.reconcile(get(custom, kube_namespace))
        assert sum(1 for r in server.requests if "info/refs" in r.target) == calls


def test_b5_an_agents_status_report_updates_the_gatewaysync_without_waiting_for_a_poll(
    kube_core: client.CoreV1Api,
    kube_api: client.ApiClient,
    kube_namespace: str,
    repo: tuple[str, str],
    manager: Manager,  # noqa: F811
) -> None:
    """Polling off: only the status ConfigMap's own watch event can bring the report in (the
    original watched no status ConfigMaps)."""
    url, head = repo
    custom = client.CustomObjectsApi(kube_api)
    api_key_secret(kube_api, kube_namespace)
    pod = make_pod(kube_core, kube_namespace, "gw-0", sidecar=True,
                   annotations={"stoker.io/cr-name": "plant"})  # fmt: skip
    make_gs(custom, kube_namespace, url, polling={"enabled": False})
    wait_until(lambda: standing(custom, kube_namespace) == {"gw-0": "Pending"}, timeout=30,
               what="the first pass")  # fmt: skip
    report(kube_core, kube_namespace, pod, head)
    wait_until(lambda: standing(custom, kube_namespace) == {"gw-0": "Synced"}, timeout=30,
               what="the agent's report in the GatewaySync's status")  # fmt: skip


def test_b6_a_recreated_pod_never_shows_the_status_its_predecessor_reported(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str,
    repo: tuple[str, str],
) -> None:  # fmt: skip
    """A StatefulSet pod recreated under the same name finds its predecessor's status
    ConfigMap (Synced): without the agent it is MissingSidecar, with a new agent that has not
    reported yet it is Pending, never Synced."""
    url, head = repo
    custom = client.CustomObjectsApi(kube_api)
    make_gs(custom, kube_namespace, url)
    notes = {"stoker.io/cr-name": "plant", "stoker.io/inject": "true"}
    for name in ("gw-0", "gw-1"):
        old = make_pod(kube_core, kube_namespace, name, annotations=notes, sidecar=True)
        report(kube_core, kube_namespace, old, head)
    controller = Controller(kube_core, custom)
    controller.reconcile(get(custom, kube_namespace))
    assert standing(custom, kube_namespace) == {"gw-0": "Synced", "gw-1": "Synced"}
    for name in ("gw-0", "gw-1"):  # no garbage collector runs: the ConfigMaps stay
        kube_core.delete_namespaced_pod(name, kube_namespace, grace_period_seconds=0)
    wait_until(lambda: not kube_core.list_namespaced_pod(kube_namespace).items, timeout=30,
               what="the old pods gone")  # fmt: skip
    make_pod(kube_core, kube_namespace, "gw-0", annotations=notes, sidecar=False)
    make_pod(kube_core, kube_namespace, "gw-1", annotations=notes, sidecar=True)
    controller.reconcile(get(custom, kube_namespace))
    assert standing(custom, kube_namespace) == {"gw-0": "MissingSidecar", "gw-1": "Pending"}
    assert condition(custom, kube_namespace, "SidecarInjected")["status"] == "False"


def test_b8_invalid_profiles_are_never_published_and_the_last_valid_ones_stay(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str,
    repo: tuple[str, str],
) -> None:  # fmt: skip
    url, _ = repo
    custom = client.CustomObjectsApi(kube_api)
    make_gs(custom, kube_namespace, url)
    controller = Controller(kube_core, custom)
    controller.reconcile(get(custom, kube_namespace))
    published = kube_core.read_namespaced_config_map("stoker-metadata-plant", kube_namespace).data
    bad = {"spec": {"sync": {"defaults": {"vars": {"my-var": "x"}}}}}  # schema-valid, not ours
    custom.patch_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", "plant", bad)
    controller.reconcile(get(custom, kube_namespace))
    assert condition(custom, kube_namespace, "ProfilesValid")["status"] == "False"
    assert "my-var" in condition(custom, kube_namespace, "ProfilesValid")["message"]
    after = kube_core.read_namespaced_config_map("stoker-metadata-plant", kube_namespace).data
    assert after == published  # the agents keep the last valid profiles
    assert "my-var" not in json.dumps(after)


def test_b22_discovered_gateways_are_listed_by_name_whatever_order_pods_come_in(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str,
    repo: tuple[str, str],
) -> None:  # fmt: skip
    """The original listed them in its informer's order, so the status churned between passes."""
    url, _ = repo
    custom = client.CustomObjectsApi(kube_api)
    make_gs(custom, kube_namespace, url)
    for pod, gateway in (("a-pod", "zulu"), ("b-pod", "alpha"), ("c-pod", "mike")):
        notes = {"stoker.io/cr-name": "plant", "stoker.io/gateway-name": gateway}
        make_pod(kube_core, kube_namespace, pod, sidecar=True, annotations=notes)
    controller = Controller(kube_core, custom)
    listed = controller.pods
    controller.reconcile(get(custom, kube_namespace))
    found = get(custom, kube_namespace)["status"]["discoveredGateways"]
    assert [g["name"] for g in found] == ["alpha", "mike", "zulu"]
    version = get(custom, kube_namespace)["metadata"]["resourceVersion"]
    controller.pods = lambda ns: list(reversed(listed(ns)))  # as a watch-fed cache may hold them
    controller.reconcile(get(custom, kube_namespace))
    assert get(custom, kube_namespace)["metadata"]["resourceVersion"] == version  # no churn


def test_b25_pods_sharing_one_gateway_name_keep_their_own_status(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str,
    repo: tuple[str, str],
) -> None:  # fmt: skip
    """A StatefulSet given `stoker.io/gateway-name` through its pod template: every pod has the
    name. The original keyed status by gateway name, so one pod's report overwrote another's."""
    url, head = repo
    custom = client.CustomObjectsApi(kube_api)
    make_gs(custom, kube_namespace, url)
    notes = {"stoker.io/cr-name": "plant", "stoker.io/gateway-name": "line"}
    pods = [
        make_pod(kube_core, kube_namespace, f"line-{i}", annotations=notes, sidecar=True,
                 owner=("StatefulSet", "line"))
        for i in range(2)
    ]  # fmt: skip
    report(kube_core, kube_namespace, pods[0], head)
    report(kube_core, kube_namespace, pods[1], head, result="Error")
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace))
    assert standing(custom, kube_namespace) == {"line-0": "Synced", "line-1": "Error"}
    assert condition(custom, kube_namespace, "AllGatewaysSynced")["message"].startswith(
        "1/2 synced"
    )
