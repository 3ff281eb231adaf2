"""The original operator's end-to-end cases for the controller and gateway discovery
(behaviour reference §9.1), run against our controller on the real API server, one test per
case or group of cases, named after them. The fixture repository is the original's: branch
`main`, lightweight tags `v1.0.0` (first commit) and `v2.0.0` (second). Where we differ on
purpose the test asserts what we do, and docs/migration.md says why."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.test_crd import MINIMAL
from k8s.test_discovery import make_pod
from k8s.test_missing_secrets import api_key_secret
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")


@pytest.fixture
def repo(tmp_path: Path) -> str:
    """The original's test repository: main, v1.0.0 at the first commit, v2.0.0 at the second."""
    bare = BareRepo.create(tmp_path, "test-repo", {"services/ignition-blue/projects/a.json": "{}"})
    bare.tag("v1.0.0")
    bare.commit({"services/ignition-blue/projects/a.json": '{"v": 2}'})
    bare.tag("v2.0.0")
    return f"file://{tmp_path / 'test-repo.git'}"


@pytest.fixture
def custom(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def create(custom: client.CustomObjectsApi, namespace: str, repo: str, **spec: Any) -> None:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = "test"
    body["spec"]["git"]["repo"] = repo
    for key, value in spec.items():
        body["spec"][key] = {**body["spec"].get(key, {}), **value} if key == "git" else value
    custom.create_namespaced_custom_object(*GS, namespace, "gatewaysyncs", body)


def reconciled(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> dict[str, Any]:
    """The GatewaySync `test` after one pass of the controller."""
    item = custom.get_namespaced_custom_object(*GS, namespace, "gatewaysyncs", "test")
    Controller(core, custom).reconcile(item)
    return custom.get_namespaced_custom_object(*GS, namespace, "gatewaysyncs", "test")


def condition(item: dict[str, Any], kind: str) -> tuple[str, str, str]:
    found = next(c for c in item["status"]["conditions"] if c["type"] == kind)
    return found["status"], found["reason"], found["message"]


def test_e2e_controller_01_a_gatewaysync_without_spec_git_is_rejected_by_the_api_server(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    body = copy.deepcopy(MINIMAL)
    del body["spec"]["git"]
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
    assert refused.value.status == 422
    assert "spec.git" in refused.value.body


def test_e2e_controller_03_a_paused_gatewaysync_is_not_ready_with_reason_paused(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    create(custom, kube_namespace, repo, paused=True)
    item = reconciled(kube_core, custom, kube_namespace)
    assert condition(item, "Ready")[:2] == ("False", "Paused")


@pytest.mark.parametrize(
    ("ref", "resolved", "reason"),
    [
        ("main", "True", "RefResolved"),  # 04-ref-resolution-branch
        ("v1.0.0", "True", "RefResolved"),  # 05-ref-resolution-tag
        ("nonexistent-branch", "False", "RefResolutionFailed"),  # 06-ref-resolution-invalid
    ],
)
def test_e2e_controller_04_05_06_branches_and_tags_resolve_and_an_unknown_ref_fails(
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: str,
    ref: str,
    resolved: str,
    reason: str,
) -> None:
    create(custom, kube_namespace, repo, git={"ref": ref})
    item = reconciled(kube_core, custom, kube_namespace)
    assert condition(item, "RefResolved")[:2] == (resolved, reason)
    if resolved == "True":
        assert item["status"]["lastSyncRef"] == ref
        assert len(item["status"]["lastSyncCommit"]) == 40


def test_e2e_controller_07_08_the_metadata_configmap_publishes_ref_profiles_and_gateway(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    """Public repository, no auth; the keys are ours (the format changed on purpose)."""
    create(custom, kube_namespace, repo)
    item = reconciled(kube_core, custom, kube_namespace)
    assert condition(item, "RefResolved")[:2] == ("True", "RefResolved")
    data = kube_core.read_namespaced_config_map("stoker-metadata-test", kube_namespace).data
    assert (data["ref"], data["paused"]) == ("main", "false")
    assert data["repo"].endswith("test-repo.git")
    spec = json.loads(data["gatewaysync"])["spec"]
    assert "default" in spec["sync"]["profiles"]
    assert (spec["gateway"]["port"], spec["gateway"]["tls"]) == (8088, False)
    assert spec["git"].get("auth") is None  # no auth: no Secret is read for Git


@pytest.mark.parametrize(
    "spec",
    [
        {"gateway": {"api": {"secretName": "missing-secret"}}},  # 09-missing-api-key-secret
        {"git": {"repo": "https://github.com/example/private.git",  # 10-missing-git-token
                 "auth": {"token": {"secretRef": {"name": "missing", "key": "token"}}}}},
        {"git": {"repo": "git@github.com:example/private.git",  # 11-missing-git-ssh-secret
                 "auth": {"sshKey": {"secretRef": {"name": "missing", "key": "id"}}}}},
    ],
)  # fmt: skip
def test_e2e_controller_09_10_11_a_missing_api_key_token_or_ssh_secret_keeps_ready_false(
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: str,
    spec: dict[str, Any],
) -> None:
    api_key_secret(custom.api_client, kube_namespace)  # only the named one is missing
    create(custom, kube_namespace, repo, **spec)
    item = reconciled(kube_core, custom, kube_namespace)
    assert condition(item, "Ready")[0] == "False"
    assert "missing" in json.dumps(item["status"]["conditions"])


def test_e2e_controller_12_13_polling_off_resolves_once_and_a_requested_ref_is_followed(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    create(custom, kube_namespace, repo, git={"ref": "v1.0.0"}, polling={"enabled": False})
    item = reconciled(kube_core, custom, kube_namespace)
    assert condition(item, "RefResolved")[:2] == ("True", "RefResolved")  # 13
    assert item["status"]["lastSyncRef"] == "v1.0.0"
    custom.patch_namespaced_custom_object(
        *GS, kube_namespace, "gatewaysyncs", "test",
        {"metadata": {"annotations": {"stoker.io/requested-ref": "v2.0.0"}}},
    )  # fmt: skip
    item = reconciled(kube_core, custom, kube_namespace)
    assert item["status"]["lastSyncRef"] == "v2.0.0"  # 12
    assert item["spec"]["git"]["ref"] == "v1.0.0"


def discovered(item: dict[str, Any]) -> list[dict[str, Any]]:
    return list(item["status"]["discoveredGateways"])


def test_e2e_discovery_01_02_08_no_pods_then_running_annotated_pods_are_discovered(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    create(custom, kube_namespace, repo)
    item = reconciled(kube_core, custom, kube_namespace)
    assert condition(item, "AllGatewaysSynced")[:2] == ("False", "NoGatewaysDiscovered")  # 01
    make_pod(kube_core, kube_namespace, "pod-0", annotations={"stoker.io/cr-name": "test"})
    item = reconciled(kube_core, custom, kube_namespace)
    assert [g["podName"] for g in discovered(item)] == ["pod-0"]  # 02
    assert condition(item, "AllGatewaysSynced")[:2] == ("False", "SyncInProgress")
    for name in ("pod-1", "pod-2"):
        make_pod(kube_core, kube_namespace, name, annotations={"stoker.io/cr-name": "test"})
    item = reconciled(kube_core, custom, kube_namespace)
    assert len(discovered(item)) == 3  # 08; without the agent each is MissingSidecar (differs)
    status, reason, message = condition(item, "AllGatewaysSynced")
    assert (status, reason) == ("False", "SyncInProgress")
    assert message.startswith("0/3 synced")


def test_e2e_discovery_03_a_pod_bound_to_a_node_that_never_runs_it_is_a_pending_gateway(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    """Differs on purpose: the original listed only Running pods (docs/migration.md)."""
    create(custom, kube_namespace, repo)
    make_pod(kube_core, kube_namespace, "pod-0", annotations={"stoker.io/cr-name": "test"},
             node="nonexistent-node", phase="Pending", sidecar=True)  # fmt: skip
    make_pod(kube_core, kube_namespace, "pod-1", annotations={"stoker.io/cr-name": "test"},
             node=None, phase="Pending")  # fmt: skip
    item = reconciled(kube_core, custom, kube_namespace)
    assert [(g["podName"], g["syncStatus"]) for g in discovered(item)] == [("pod-0", "Pending")]


@pytest.mark.parametrize(
    ("annotations", "labels", "name"),
    [
        ({"stoker.io/gateway-name": "custom-gw"}, {"app.kubernetes.io/name": "label-gw"},
         "custom-gw"),  # 04-gateway-name-annotation
        ({}, {"app.kubernetes.io/name": "label-gw"}, "label-gw"),  # 05-gateway-name-label
        ({}, {}, "gw-pod"),  # 06-gateway-name-podname
    ],
)  # fmt: skip
def test_e2e_discovery_04_05_06_the_annotation_wins_then_the_label_then_the_pod_name(
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: str,
    annotations: dict[str, str],
    labels: dict[str, str],
    name: str,
) -> None:
    create(custom, kube_namespace, repo)
    notes = {"stoker.io/cr-name": "test", **annotations}
    make_pod(kube_core, kube_namespace, "gw-pod", annotations=notes, labels=labels)
    item = reconciled(kube_core, custom, kube_namespace)
    assert [g["name"] for g in discovered(item)] == [name]


def test_e2e_discovery_07_a_pod_annotated_for_injection_afterwards_shows_missing_sidecar(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str, repo: str
) -> None:
    create(custom, kube_namespace, repo)
    make_pod(kube_core, kube_namespace, "gw-0", annotations={"stoker.io/cr-name": "test"})
    reconciled(kube_core, custom, kube_namespace)
    kube_core.patch_namespaced_pod(
        "gw-0", kube_namespace, {"metadata": {"annotations": {"stoker.io/inject": "true"}}}
    )
    item = reconciled(kube_core, custom, kube_namespace)
    assert [g["syncStatus"] for g in discovered(item)] == ["MissingSidecar"]
    assert condition(item, "SidecarInjected")[:2] == ("False", "SidecarMissing")


def test_annotation_table_what_the_controller_labels_and_whom_the_agents_binding_names(
    kube_core: client.CoreV1Api,
    kube_api: client.ApiClient,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: str,
) -> None:
    """The original's §2.6 labels on what the controller writes: `stoker.io/cr-name` and
    `app.kubernetes.io/managed-by` on the metadata and status ConfigMaps and the agents'
    RoleBinding, which is also owned by its GatewaySync (the original labelled it
    `stoker.io/gatewaysync`)."""
    create(custom, kube_namespace, repo)
    make_pod(kube_core, kube_namespace, "gw-0", sidecar=True,
             annotations={"stoker.io/cr-name": "test"})  # fmt: skip
    reconciled(kube_core, custom, kube_namespace)
    labels = kube_core.read_namespaced_config_map("stoker-metadata-test", kube_namespace)
    assert labels.metadata.labels == {
        "stoker.io/cr-name": "test", "app.kubernetes.io/managed-by": "stoker-controller"
    }  # fmt: skip
    status = kube_core.read_namespaced_config_map("stoker-status-test-gw-0", kube_namespace)
    assert status.metadata.labels == {
        "stoker.io/cr-name": "test", "app.kubernetes.io/managed-by": "stoker-agent"
    }  # fmt: skip
    binding = client.RbacAuthorizationV1Api(kube_api).read_namespaced_role_binding(
        "stoker-agent-test", kube_namespace
    )
    [owner] = binding.metadata.owner_references
    assert (owner.kind, owner.name) == ("GatewaySync", "test")
    assert binding.metadata.labels == labels.metadata.labels
