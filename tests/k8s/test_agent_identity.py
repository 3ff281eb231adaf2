"""H15: the gateway container cannot steer its own agent. On the real API server, with the
chart's RBAC and the controller acting under its own ServiceAccount: a process holding only
the gateway pod's ServiceAccount token (what the gateway container has) can neither change the
metadata its agent follows nor forge any gateway's status, while the agent, under the
per-GatewaySync identity mounted only into its sidecar, reads its metadata and reports its own
status and nothing more."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.rbacsupport import chart_rbac, forbidden, held_rules, token_for
from k8s.test_chart import helm as helm  # the fixture
from k8s.test_crd import MINIMAL
from k8s.test_rbac_table import table
from stoker_core.errors import TemporaryError
from stoker_core.injection import decide
from stoker_core.model import GatewaySync
from stoker_core.parsing import structure
from stoker_core.status import SyncRecord
from stoker_k8s.agentapi import AgentApi
from stoker_k8s.agentports import AgentEnv, ConfigMapMetadata, ConfigMapStatus, gateway_restarts
from stoker_k8s.apiaccess import Access, in_cluster
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube
CR = "minimal"


def get_cr(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", CR
    )


def add(doc: Any, path: str, value: Any) -> None:
    """One JSON Patch `add` (the only operation the webhook sends)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    last = parts[-1]
    if isinstance(doc, list):
        doc.append(value) if last == "-" else doc.insert(int(last), value)
    else:
        doc[last] = value


def injected_pod(body: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    """A gateway pod as the webhook leaves it (its own decision, applied)."""
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "annotations": {"stoker.io/inject": "true", "stoker.io/cr-name": CR},
        },
        "spec": {
            "nodeName": "node-1",  # scheduled: the controller discovers only scheduled pods
            "containers": [
                {
                    "name": "gateway",
                    "image": "ignition",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    gs = structure({k: v for k, v in body.items() if k != "status"}, GatewaySync)
    decision = decide(pod, namespace, {CR: gs})
    assert decision.allowed, decision.message
    for op in decision.patch:
        add(pod, op["path"], op["value"])
    return pod


@pytest.fixture
def site(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """The chart's RBAC (serving `kube_namespace`), a GatewaySync, and two injected gateway
    pods reconciled by a controller that holds only the chart's rights."""
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    admin = client.CoreV1Api(kube_api)
    with chart_rbac(helm, kube_env, kube_api, f"namespaces={{{kube_namespace}}}") as (
        release,
        home,
    ):
        token = token_for(admin, home, f"{release}-controller")
        with kube_env.api_client(token) as ctl_api:
            core, custom = client.CoreV1Api(ctl_api), client.CustomObjectsApi(ctl_api)
            client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
                "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
            )
            controller = Controller(core, custom)
            controller.reconcile(get_cr(custom, kube_namespace))
            pods = {
                name: admin.create_namespaced_pod(
                    kube_namespace, injected_pod(body, kube_namespace, name)
                )
                for name in ("gw-0", "gw-1")
            }
            controller.reconcile(get_cr(custom, kube_namespace))
            yield {
                "controller": controller,
                "custom": custom,
                "pods": pods,
                "namespace": kube_namespace,
            }


def test_H15_the_gateway_pods_own_token_can_neither_steer_its_agent_nor_forge_a_status(
    kube_env: ControlPlane, kube_core: client.CoreV1Api, site: dict[str, Any]
) -> None:
    ns, pods = site["namespace"], site["pods"]
    metadata = kube_core.read_namespaced_config_map(f"stoker-metadata-{CR}", ns)
    # What the gateway container holds: the pod's ServiceAccount token, bound to its pod.
    gateway_token = token_for(kube_core, ns, "default", pods["gw-0"])
    with kube_env.api_client(gateway_token) as gateway_api:
        gateway = client.CoreV1Api(gateway_api)
        steered = copy.deepcopy(metadata)
        steered.data["commit"] = "0" * 40
        steered.metadata.resource_version = None
        assert forbidden(gateway.replace_namespaced_config_map, steered.metadata.name, ns, steered)
        assert forbidden(
            gateway.patch_namespaced_config_map,
            steered.metadata.name,
            ns,
            {"data": {"commit": "0" * 40}},
        )
        assert forbidden(gateway.delete_namespaced_config_map, steered.metadata.name, ns)
        forged = SyncRecord(result="Synced", commit="f" * 40, ref="main")
        for pod in pods.values():
            name = f"stoker-status-{CR}-{pod.metadata.name}"
            body = {
                "metadata": {
                    "name": name,
                    "labels": {
                        "stoker.io/cr-name": CR,
                        "app.kubernetes.io/managed-by": "stoker-agent",
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "name": pod.metadata.name,
                            "uid": pod.metadata.uid,
                        }
                    ],
                },
                "data": {"status.json": json.dumps(forged.to_json())},
            }
            assert forbidden(gateway.create_namespaced_config_map, ns, body)
            assert forbidden(gateway.replace_namespaced_config_map, name, ns, body)
            assert forbidden(gateway.patch_namespaced_config_map, name, ns, body)
        # Nor can it take the agent's identity from the Secret that holds it.
        assert forbidden(gateway.read_namespaced_secret, f"stoker-agent-token-{CR}", ns)
        assert forbidden(gateway.list_namespaced_secret, ns)
    # The agent's credentials are mounted into the sidecar only, never into the gateway.
    spec = kube_core.read_namespaced_pod("gw-0", ns).spec
    holding = {
        v.name
        for v in spec.volumes
        if v.projected
        and any(
            s.secret is not None and s.secret.name == f"stoker-agent-token-{CR}"
            for s in v.projected.sources
        )
    }
    assert len(holding) == 1
    [sidecar] = [c for c in spec.init_containers if c.name == "stoker-agent"]
    assert holding <= {m.name for m in sidecar.volume_mounts}
    for container in spec.containers:
        assert not holding & {m.name for m in container.volume_mounts or []}
    # What the controller believes is unchanged.
    site["controller"].reconcile(get_cr(site["custom"], ns))
    assert kube_core.read_namespaced_config_map(f"stoker-metadata-{CR}", ns).data == metadata.data
    gateways = get_cr(site["custom"], ns)["status"]["discoveredGateways"]
    assert {g["podName"]: g["syncStatus"] for g in gateways} == {
        "gw-0": "Pending",
        "gw-1": "Pending",
    }


def agent_env(namespace: str, pod: str) -> AgentEnv:
    return AgentEnv.from_environ(
        {"POD_NAME": pod, "POD_NAMESPACE": namespace, "CR_NAME": CR, "REPO_PATH": "/nonexistent"}
    )


def test_H15_the_agent_identity_reads_its_metadata_and_writes_only_its_gateways_status(
    kube_env: ControlPlane, kube_core: client.CoreV1Api, site: dict[str, Any]
) -> None:
    ns = site["namespace"]
    secret = kube_core.read_namespaced_secret(f"stoker-agent-token-{CR}", ns)
    agent_token = base64.b64decode(secret.data["token"]).decode()
    # The agent's own client for its ports; the official one to probe its rights.
    ports = AgentApi(
        Access(server=kube_env.server, verify=str(kube_env.ca_file), token=agent_token)
    )
    with kube_env.api_client(agent_token) as agent_api:
        agent = client.CoreV1Api(agent_api)
        env = agent_env(ns, "gw-0")
        published = ConfigMapMetadata(ports, env).read()
        assert published is not None
        assert (
            published.settings.commit
            == kube_core.read_namespaced_config_map(f"stoker-metadata-{CR}", ns).data["commit"]
        )
        # The agent watches its metadata by name.
        listed = agent.list_namespaced_config_map(
            ns, field_selector=f"metadata.name=stoker-metadata-{CR}"
        )
        assert [cm.metadata.name for cm in listed.items] == [f"stoker-metadata-{CR}"]
        synced = SyncRecord(result="Error", commit=published.settings.commit, ref="main")
        ConfigMapStatus(ports, env).write(synced)
        # ... and nothing beyond: not the metadata, no other ConfigMap, no Secret.
        assert forbidden(
            agent.patch_namespaced_config_map,
            f"stoker-metadata-{CR}",
            ns,
            {"data": {"commit": "0" * 40}},
        )
        assert forbidden(agent.create_namespaced_config_map, ns, {"metadata": {"name": "anything"}})
        assert forbidden(agent.list_namespaced_config_map, ns)
        assert forbidden(agent.read_namespaced_secret, f"stoker-agent-token-{CR}", ns)
        assert forbidden(agent.list_namespaced_pod, ns)
        # Exactly the agent's rows of docs/security.md's RBAC table, as the API server sees it.
        rows = {r[2:] for r in table() if r[0] == "stoker-agent-<gatewaysync>"}
        expected = {
            (group, resource, verb, name.replace("<gatewaysync>", CR).replace("<pod>", pod))
            for group, resource, verb, name in rows
            for pod in site["pods"]
        }
        assert held_rules(agent_api, ns) == expected
    site["controller"].reconcile(get_cr(site["custom"], ns))
    gateways = get_cr(site["custom"], ns)["status"]["discoveredGateways"]
    assert {g["podName"]: g["syncStatus"] for g in gateways} == {"gw-0": "Error", "gw-1": "Pending"}


def test_each_agent_syncs_the_target_the_metadata_names_for_its_gateway_else_the_baseline(
    kube_env: ControlPlane, kube_core: client.CoreV1Api, site: dict[str, Any]
) -> None:
    ns = site["namespace"]
    name = f"stoker-metadata-{CR}"
    baseline = kube_core.read_namespaced_config_map(name, ns).data["commit"]
    target = "b" * 40  # what a rollout gives gw-0 first (format "2")
    kube_core.patch_namespaced_config_map(
        name, ns, {"data": {"format": "2", "targets": json.dumps({"gw-0": target})}}
    )
    secret = kube_core.read_namespaced_secret(f"stoker-agent-token-{CR}", ns)
    token = base64.b64decode(secret.data["token"]).decode()
    ports = AgentApi(Access(server=kube_env.server, verify=str(kube_env.ca_file), token=token))
    read = {pod: ConfigMapMetadata(ports, agent_env(ns, pod)).read() for pod in ("gw-0", "gw-1")}
    assert {pod: m.settings.commit for pod, m in read.items() if m is not None} == {
        "gw-0": target,
        "gw-1": baseline,
    }
    # It says so in its status, so the controller waits on it rather than naming it too old.
    ConfigMapStatus(ports, agent_env(ns, "gw-0")).write(SyncRecord(result="Synced", commit=target))
    written = kube_core.read_namespaced_config_map(f"stoker-status-{CR}-gw-0", ns)
    assert json.loads(written.data["status.json"])["readsTargets"] is True


def test_the_agent_reads_the_restart_count_of_its_gateway_container_not_its_own(
    kube_env: ControlPlane, kube_core: client.CoreV1Api, site: dict[str, Any]
) -> None:
    ns = site["namespace"]
    secret = kube_core.read_namespaced_secret(f"stoker-agent-token-{CR}", ns)
    token = base64.b64decode(secret.data["token"]).decode()
    ports = AgentApi(Access(server=kube_env.server, verify=str(kube_env.ca_file), token=token))
    restarts = gateway_restarts(ports, agent_env(ns, "gw-0"))
    assert restarts() is None  # no kubelet has reported the containers yet

    def status(name: str, count: int) -> dict[str, Any]:
        return {"name": name, "restartCount": count, "ready": True, "image": "x", "imageID": ""}

    kube_core.patch_namespaced_pod_status(
        "gw-0",
        ns,
        {
            "status": {
                "containerStatuses": [status("gateway", 2)],
                "initContainerStatuses": [status("stoker-agent", 5)],
            }
        },
    )
    assert restarts() == 2


def test_H15_in_a_pod_the_agent_uses_the_token_mounted_for_it_and_reads_it_afresh(
    kube_env: ControlPlane, kube_core: client.CoreV1Api, site: dict[str, Any], tmp_path: Path
) -> None:
    ns = site["namespace"]
    secret = kube_core.read_namespaced_secret(f"stoker-agent-token-{CR}", ns)
    url = kube_env.server.removeprefix("https://")
    host, port = url.rsplit(":", 1)
    token_file = tmp_path / "api-access" / "token"
    environ = {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "STOKER_API_TOKEN_FILE": str(token_file),
        "STOKER_API_CA_FILE": str(kube_env.ca_file),
    }
    agent = AgentApi(in_cluster(environ))
    reader = ConfigMapMetadata(agent, agent_env(ns, "gw-0"))
    # Not mounted yet (the controller has not written it): refused, retried, never a crash.
    with pytest.raises(TemporaryError, match=r"API token .* is not there yet"):
        reader.read()
    token_file.parent.mkdir()
    token_file.write_text(base64.b64decode(secret.data["token"]).decode())
    assert reader.read() is not None  # the same client picks the token up
    # The pod's own ServiceAccount token in that file would be refused: it has no rights.
    token_file.write_text(token_for(kube_core, ns, "default", site["pods"]["gw-0"]))
    with pytest.raises(TemporaryError, match="forbidden"):
        ConfigMapMetadata(agent, agent_env(ns, "gw-0")).read()


def test_H15_an_upgrade_replaces_the_binding_that_gave_the_pods_account_the_agents_rights(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role_binding(  # what an earlier release left behind
        kube_namespace,
        {
            "metadata": {"name": f"stoker-agent-{CR}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "stoker-agent",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "default", "namespace": kube_namespace}
            ],
        },
    )
    Controller(kube_core, custom).reconcile(get_cr(custom, kube_namespace))
    binding = rbac.read_namespaced_role_binding(f"stoker-agent-{CR}", kube_namespace)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", f"stoker-agent-{CR}")
    assert [s.name for s in binding.subjects] == [f"stoker-agent-{CR}"]
