"""Controller lifecycle on the real API server: the finalizer cleans up what the GatewaySync
owned, and events are emitted once per change, not on every reconcile (B7)."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conftest import git
from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo

pytestmark = pytest.mark.kube


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name
    )


def test_deleting_a_gatewaysync_removes_what_it_created(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    controller = Controller(kube_core, custom)
    controller.reconcile(get(custom, kube_namespace, "minimal"))
    assert "stoker.io/finalizer" in get(custom, kube_namespace, "minimal")["metadata"]["finalizers"]
    assert kube_core.read_namespaced_secret("stoker-agent-token-minimal", kube_namespace).data
    assert kube_core.read_namespaced_config_map("stoker-metadata-minimal", kube_namespace).data[
        "commit"
    ]
    kube_core.create_namespaced_config_map(
        kube_namespace,
        {
            "metadata": {
                "name": "stoker-status-minimal-gw-0",
                "labels": {"stoker.io/cr-name": "minimal"},
            }
        },
    )
    custom.delete_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )
    controller.reconcile(get(custom, kube_namespace, "minimal"))  # now carries deletionTimestamp
    rbac = client.RbacAuthorizationV1Api(kube_api)
    for read, name in (
        (kube_core.read_namespaced_config_map, "stoker-metadata-minimal"),
        (kube_core.read_namespaced_config_map, "stoker-status-minimal-gw-0"),
        (kube_core.read_namespaced_secret, "stoker-agent-token-minimal"),
        (kube_core.read_namespaced_service_account, "stoker-agent-minimal"),
        (rbac.read_namespaced_role, "stoker-agent-minimal"),
        (rbac.read_namespaced_role_binding, "stoker-agent-minimal"),
    ):
        with pytest.raises(ApiException) as gone:
            read(name, kube_namespace)
        assert gone.value.status == 404
    with pytest.raises(ApiException) as released:
        get(custom, kube_namespace, "minimal")
    assert released.value.status == 404


def test_events_are_emitted_once_per_change_b7(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    body = copy.deepcopy(MINIMAL)
    body["spec"]["sync"]["defaults"] = {"vars": {"my-var": "x"}}  # valid for the schema, not for us
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    controller = Controller(kube_core, custom)
    for _ in range(3):
        controller.reconcile(get(custom, kube_namespace, "minimal"))
    events = kube_core.list_namespaced_event(kube_namespace).items
    invalid = [e for e in events if e.reason == "ProfilesInvalid"]
    assert len(invalid) == 1
    assert invalid[0].type == "Warning"
    assert "my-var" in invalid[0].message
    configmaps = [
        cm.metadata.name for cm in kube_core.list_namespaced_config_map(kube_namespace).items
    ]
    assert "stoker-metadata-minimal" not in configmaps  # invalid profiles are never published (B8)


def test_agents_are_bound_and_ls_remote_is_shared_until_a_push_asks_again(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    from support.gitservers import GitHttpServer

    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    with GitHttpServer(tmp_path, "git", "pw", require_auth=False) as server:
        body = copy.deepcopy(MINIMAL)
        body["spec"]["git"]["repo"] = server.url_for("config")
        custom = client.CustomObjectsApi(kube_api)
        custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
        kube_core.create_namespaced_pod(
            kube_namespace,
            {
                "metadata": {
                    "name": "gw-0",
                    "annotations": {"stoker.io/inject": "true", "stoker.io/cr-name": "minimal"},
                },
                "spec": {"containers": [{"name": "gateway", "image": "ignition"}]},
            },
        )
        controller = Controller(kube_core, custom)

        def advertisements() -> int:
            return sum(1 for r in server.requests if "info/refs" in r.target)

        controller.reconcile(get(custom, kube_namespace, "minimal"))
        controller.reconcile(get(custom, kube_namespace, "minimal"))
        assert advertisements() == 1  # one ls-remote per polling interval

        def pushed(annotation: str, value: str) -> None:
            """The receiver's mark of a push, then the controller's pass."""
            notes = {"metadata": {"annotations": {annotation: value}}}
            custom.patch_namespaced_custom_object(
                "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal", notes
            )
            controller.reconcile(get(custom, kube_namespace, "minimal"))

        pushed("stoker.io/refresh-requested-at", "t1")
        assert advertisements() == 2  # a push asked for a fresh look
        # A second push within the same second: the receiver's stamp is the same, its delivery
        # is not. It was answered from the cache (the commit it brought was never published
        # while polling was off; found by the fleet benchmark, whose rounds grew that quick).
        for delivery in ("d1", "d2"):
            pushed("stoker.io/refresh-delivery", delivery)
        assert advertisements() == 4
        controller.reconcile(get(custom, kube_namespace, "minimal"))
        assert advertisements() == 4  # nothing new asked: the cache answers
    binding = client.RbacAuthorizationV1Api(kube_api).read_namespaced_role_binding(
        "stoker-agent-minimal", kube_namespace
    )
    # The agents' own identity (H15), never the gateway pod's ServiceAccount ("default").
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", "stoker-agent-minimal")
    assert [(s.kind, s.name) for s in binding.subjects] == [
        ("ServiceAccount", "stoker-agent-minimal")
    ]
    assert binding.metadata.owner_references[0].kind == "GatewaySync"


class CountingCore(client.CoreV1Api):
    """The real client, counting the single-object reads it sends."""

    reads = 0

    def read_namespaced_config_map(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return super().read_namespaced_config_map(*args, **kwargs)


class CountingCustom(client.CustomObjectsApi):
    """The real client, counting the status writes it sends."""

    status_writes = 0

    def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> Any:
        self.status_writes += 1
        return super().patch_namespaced_custom_object_status(*args, **kwargs)


def test_a_pass_with_nothing_new_costs_no_write_and_first_passes_share_ls_remote(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    from support.gitservers import GitHttpServer

    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    with GitHttpServer(tmp_path, "git", "pw", require_auth=False) as server:
        custom = CountingCustom(kube_api)
        names = ("line-1", "line-2")
        for name in names:
            body = copy.deepcopy(MINIMAL)
            body["metadata"]["name"] = name
            body["spec"]["git"]["repo"] = server.url_for("config")
            custom.create_namespaced_custom_object(
                "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
            )
        pod = kube_core.create_namespaced_pod(
            kube_namespace,
            {
                "metadata": {
                    "name": "gw-0",
                    "annotations": {"stoker.io/inject": "true", "stoker.io/cr-name": "line-1"},
                },
                "spec": {
                    "nodeName": "node-1",  # scheduled: discovered (an unscheduled pod is not)
                    "initContainers": [
                        {"name": "stoker-agent", "image": "agent", "restartPolicy": "Always"}
                    ],
                    "containers": [{"name": "gateway", "image": "ignition"}],
                },
            },
        )
        record = {
            "result": "Synced",
            "commit": git(tmp_path / "config.git", "rev-parse", "HEAD"),  # the published one
            "ref": "main",
            "time": "2026-11-27T00:00:00Z",
            "durationSeconds": 1.25,
            "scan": "scan done",
            "agentVersion": "0.1.0",
            "added": {"count": 1, "paths": ["projects/site/project.json"]},
        }
        kube_core.create_namespaced_config_map(
            kube_namespace,
            {
                "metadata": {
                    "name": "stoker-status-line-1-gw-0",
                    "labels": {
                        "stoker.io/cr-name": "line-1",
                        "app.kubernetes.io/managed-by": "stoker-agent",
                    },
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Pod", "name": "gw-0", "uid": pod.metadata.uid}
                    ],
                },
                "data": {"status.json": json.dumps(record)},
            },
        )
        core = CountingCore(kube_api)
        controller = Controller(core, custom)
        with ThreadPoolExecutor(2) as workers:  # as the manager's workers would, at once
            list(workers.map(controller.reconcile, [get(custom, kube_namespace, n) for n in names]))
        # Two GatewaySyncs on one repository: one ls-remote, even on their first pass.
        assert sum(1 for r in server.requests if "info/refs" in r.target) == 1
        written, reads = custom.status_writes, core.reads
        assert written == 2
        for name in ("line-1", "line-2"):
            controller.reconcile(get(custom, kube_namespace, name))
        assert custom.status_writes == written  # nothing changed: nothing written...
        assert core.reads == reads  # ...and the metadata it published is not read back
    [gateway] = get(custom, kube_namespace, "line-1")["status"]["discoveredGateways"]
    assert gateway["syncStatus"] == "Synced"
    assert gateway["syncedRef"] == "main"
    assert gateway["lastSyncDuration"] == "1.25s"
    assert gateway["filesChanged"] == 1
    assert gateway["projectsSynced"] == ["site"]


def test_a_branch_made_after_the_shared_answer_resolves_at_once_for_a_new_gatewaysync(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    """A plant adds a line: a new branch, then a GatewaySync following it, beside one that
    follows main in the same repository. The shared ls-remote answer (one per repository and
    polling interval) predates the branch; a miss in it asks once more instead of reporting
    the ref missing until the interval is over."""
    repo = BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    custom = client.CustomObjectsApi(kube_api)
    controller = Controller(kube_core, custom)
    for name, ref in (("main-line", "main"), ("new-line", "line-2")):
        body = copy.deepcopy(MINIMAL)
        body["metadata"]["name"] = name
        body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
        body["spec"]["git"]["ref"] = ref
        custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
        if name == "main-line":
            controller.reconcile(get(custom, kube_namespace, name))  # the shared answer
            repo.git("branch", "line-2", "main")
    controller.reconcile(get(custom, kube_namespace, "new-line"))
    status = get(custom, kube_namespace, "new-line")["status"]
    resolved = {c["type"]: c for c in status["conditions"]}["RefResolved"]
    assert resolved["status"] == "True", resolved["message"]
    assert status["lastSyncCommit"] == repo.rev_parse("line-2")
