"""The pod spec the API server stores after Stoker's injection (issue 15): every Secret volume
is optional, so a missing API-key, Git, GitHub-App token or varsFrom Secret never leaves a
gateway pod in ContainerCreating; the agent runs after the pod's own init containers (a chart's
seeding container fills an empty data volume first); and the agent meets the `restricted` Pod
Security level as the gateway's user, so the files it writes are the gateway's.

The injection decision is served by a loopback HTTPS webhook (tests/support/kubewebhook.py)
that the real API server calls; the volumes are then materialised as a kubelet would
(tests/support/kubelet.py), which fails on a missing Secret that is not optional."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_core.validation import load
from stoker_k8s.admission import review_pod
from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, wait_until
from support.kubelet import materialize_pod, pod_dict
from support.kubewebhook import serve_webhook

pytestmark = pytest.mark.kube


def gatewaysync(auth: dict[str, Any] | None = None, **defaults: Any) -> dict[str, Any]:
    """The minimal GatewaySync with Git `auth` and sync `defaults` (e.g. varsFrom)."""
    doc = copy.deepcopy(MINIMAL)
    if auth:
        doc["spec"]["git"]["auth"] = auth
    doc["spec"]["sync"]["defaults"] = defaults
    return doc


def gateway(name: str, security: dict[str, Any] | None = None) -> dict[str, Any]:
    """A gateway pod asking for injection, with a seeding init container of its own."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"stoker.io/inject": "true"}},
        "spec": {
            "initContainers": [
                {
                    "name": "seed-data",
                    "image": "example.invalid/ignition:8.3",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "containers": [
                {
                    "name": "gateway",
                    "image": "example.invalid/ignition:8.3",
                    "volumeMounts": [{"name": "data", "mountPath": "/usr/local/bin/ignition/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    if security is not None:
        pod["spec"]["securityContext"] = security
    return pod


RESTRICTED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"]},
}


@pytest.fixture
def injecting(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> Iterator[list[dict[str, Any]]]:
    """Stoker's pod review behind the API server for this namespace; the test appends the
    GatewaySync documents the webhook sees (one at a time)."""
    crs: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        listed = {c["metadata"]["name"]: load(c) for c in crs}
        return dict(review_pod({"request": request}, lambda _ns: listed)["response"])

    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"stoker-spec-{kube_namespace}"},
        "webhooks": [
            {
                "name": "pod-inject.stoker.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": kube_namespace}
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }
    ca = CertificateAuthority("stoker-spec-ca")
    with serve_webhook(handler, ca, tmp_path) as server:
        mutating["webhooks"][0]["clientConfig"] = server.client_config("/mutate-v1-pod")
        with kube_env.webhook_configuration(kube_api, mutating):
            yield crs


def create(core: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    """Create `pod` (retrying a canary until the API server calls the new webhook); the stored
    pod as the API server serves it."""
    attempt = 0
    base = pod["metadata"]["name"]

    def injected() -> dict[str, Any] | None:
        nonlocal attempt
        attempt += 1
        body = copy.deepcopy(pod)
        body["metadata"]["name"] = f"{base}-{attempt}"
        core.create_namespaced_pod(namespace, body)
        stored = pod_dict(core, namespace, body["metadata"]["name"])
        inits = stored["spec"].get("initContainers") or []
        return stored if any(c["name"] == "stoker-agent" for c in inits) else None

    stored: dict[str, Any] = wait_until(injected, timeout=20, what="the webhook to inject")
    return stored


def agent_of(pod: dict[str, Any]) -> dict[str, Any]:
    [agent] = [c for c in pod["spec"]["initContainers"] if c["name"] == "stoker-agent"]
    return agent


@pytest.mark.parametrize(
    ("auth", "defaults"),
    [
        ({"token": {"secretRef": {"name": "git-token", "key": "token"}}}, {}),
        (
            {
                "sshKey": {
                    "secretRef": {"name": "git-ssh", "key": "id_ed25519"},
                    "knownHosts": {"secretRef": {"name": "git-hosts", "key": "known_hosts"}},
                }
            },
            {},
        ),
        (
            {
                "githubApp": {
                    "appId": 1,
                    "installationId": 2,
                    "privateKeySecretRef": {"name": "gh-app", "key": "key.pem"},
                }
            },
            {"varsFrom": [{"name": "dbPassword", "secretKeyRef": {"name": "db", "key": "pw"}}]},
        ),
    ],
    ids=["token", "ssh-key", "github-app-and-varsFrom"],
)
def test_a_gateway_pod_whose_secrets_are_all_missing_still_gets_its_volumes(
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    injecting: list[dict[str, Any]],
    tmp_path: Path,
    auth: dict[str, Any],
    defaults: dict[str, Any],
) -> None:
    injecting.append(gatewaysync(auth, **defaults))
    stored = create(kube_core, kube_namespace, gateway("ignition"))
    secrets = [v for v in stored["spec"]["volumes"] if "secret" in v]
    assert len(secrets) >= 2, secrets  # the API key and at least one more
    assert all(v["secret"].get("optional") is True for v in secrets), secrets
    # What the kubelet does: no Secret exists in this namespace, and every volume is set up.
    local = materialize_pod(
        kube_core, kube_namespace, stored["metadata"]["name"], "stoker-agent", tmp_path / "pod"
    )
    assert not Path(local.env["API_KEY_FILE"]).exists()


def test_the_agent_runs_after_the_pod_s_own_init_containers(
    kube_core: client.CoreV1Api, kube_namespace: str, injecting: list[dict[str, Any]]
) -> None:
    injecting.append(gatewaysync())
    stored = create(kube_core, kube_namespace, gateway("ignition"))
    names = [c["name"] for c in stored["spec"]["initContainers"]]
    assert names == ["seed-data", "stoker-agent"]


def test_the_agent_runs_as_ignition_s_user_2003_when_the_pod_names_none(
    kube_core: client.CoreV1Api, kube_namespace: str, injecting: list[dict[str, Any]]
) -> None:
    injecting.append(gatewaysync())
    stored = create(kube_core, kube_namespace, gateway("ignition"))
    security = agent_of(stored)["securityContext"]
    assert security == {**RESTRICTED, "runAsUser": 2003, "runAsGroup": 2003}


def test_the_agent_runs_as_the_gateway_container_s_user_and_the_pod_s_fs_group(
    kube_core: client.CoreV1Api, kube_namespace: str, injecting: list[dict[str, Any]]
) -> None:
    injecting.append(gatewaysync())
    pod = gateway("ignition", {"runAsUser": 1500, "fsGroup": 3000})
    pod["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1700}
    stored = create(kube_core, kube_namespace, pod)
    security = agent_of(stored)["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1700, 3000)


def test_a_gateway_started_as_root_gets_an_agent_that_runs_as_2003_not_root(
    kube_core: client.CoreV1Api, kube_namespace: str, injecting: list[dict[str, Any]]
) -> None:
    """The Ignition image may start as root and drop to its user 2003: the kubelet would refuse
    an agent with runAsNonRoot that inherited the pod's root UID."""
    injecting.append(gatewaysync())
    stored = create(kube_core, kube_namespace, gateway("ignition", {"runAsUser": 0}))
    security = agent_of(stored)["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (2003, 2003)


def test_a_namespace_enforcing_restricted_admits_the_injected_gateway_pod(
    kube_core: client.CoreV1Api, kube_namespace: str, injecting: list[dict[str, Any]]
) -> None:
    kube_core.patch_namespace(
        kube_namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    injecting.append(gatewaysync())
    security = {"runAsUser": 2003, "runAsGroup": 2003, "fsGroup": 2003, "runAsNonRoot": True}
    pod = gateway("ignition", {**security, "seccompProfile": {"type": "RuntimeDefault"}})
    for container in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    stored = create(kube_core, kube_namespace, pod)
    security = agent_of(stored)["securityContext"]
    assert security == {**RESTRICTED, "runAsUser": 2003, "runAsGroup": 2003}
