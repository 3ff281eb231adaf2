"""`stoker webhook` under gunicorn with TLS, called by the real API server: pods get the
sidecar, invalid GatewaySyncs are refused with every problem at once, a pod without a data
volume starts without the agent and with a Warning event (B19), and with the chart's
failurePolicy a webhook outage lets gateway pods start (the controller reports MissingSidecar)."""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.test_chart import helm as helm  # the fixture
from k8s.test_chart import render
from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from support.apimetrics import api_server_count
from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until
from support.kubelet import mark_pod_running
from support.kubewebhook import pointed_at_nobody

pytestmark = pytest.mark.kube


@pytest.fixture
def webhook_server(kube_env: ControlPlane, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with serving(kube_env.subprocess_env(), tmp_path) as server:
        yield server


@contextlib.contextmanager
def serving(env: dict[str, str], tmp_path: Path, *extra: str) -> Iterator[tuple[str, str]]:
    """`stoker webhook` as a process with `env` (its KUBECONFIG) and `extra` arguments: its URL
    and CA bundle."""
    ca = CertificateAuthority("stoker-webhook-ca")
    cert, key = ca.issue_server("127.0.0.1").write(tmp_path, "webhook")
    port = free_port()
    log = (tmp_path / "webhook.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stoker_agent.cli",
            "webhook",
            "--bind",
            f"127.0.0.1:{port}",
            "--cert-file",
            str(cert),
            "--key-file",
            str(key),
            "--workers",
            "1",
            *extra,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"https://127.0.0.1:{port}"
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", verify=str(ca_file), timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=20, what="stoker webhook to listen")
        yield url, ca.ca_bundle
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def configurations(url: str, ca_bundle: str, namespace: str) -> list[dict[str, Any]]:
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    common = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "timeoutSeconds": 5,
        "namespaceSelector": selector,
    }
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"stoker-inject-{namespace}"},
            "webhooks": [
                {
                    **common,
                    "name": "pod-inject.stoker.io",
                    "failurePolicy": "Ignore",
                    "clientConfig": {"url": f"{url}/mutate-v1-pod", "caBundle": ca_bundle},
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
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": f"stoker-validate-{namespace}"},
            "webhooks": [
                {
                    **common,
                    "name": "gatewaysync-validate.stoker.io",
                    "failurePolicy": "Fail",
                    "clientConfig": {"url": f"{url}/validate-gatewaysync", "caBundle": ca_bundle},
                    "rules": [
                        {
                            "apiGroups": ["stoker.io"],
                            "apiVersions": ["v1alpha1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["gatewaysyncs"],
                            "scope": "Namespaced",
                        }
                    ],
                }
            ],
        },
    ]


def gateway_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"stoker.io/inject": "true"}},
        "spec": {
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


def test_the_api_server_calls_stoker_webhook_and_stores_the_sidecar(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    webhook_server: tuple[str, str],
) -> None:
    url, bundle = webhook_server
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    mutating, validating = configurations(url, bundle, kube_namespace)
    with (
        kube_env.webhook_configuration(kube_api, mutating),
        kube_env.webhook_configuration(kube_api, validating),
    ):
        attempt = 0

        def injected_pod() -> Any:
            nonlocal attempt
            attempt += 1
            created = kube_core.create_namespaced_pod(
                kube_namespace, gateway_pod(f"ignition-{attempt}")
            )
            inits = created.spec.init_containers or []
            return created if inits else None

        stored = wait_until(injected_pod, timeout=20, what="the webhook to inject the agent")
        [agent] = stored.spec.init_containers
        assert agent.name == "stoker-agent"
        assert agent.restart_policy == "Always"
        env = {e.name: e.value for e in agent.env}
        assert env["CR_NAME"] == "minimal"
        assert env["PROFILE"] == "default"
        assert env["DATA_PATH"] == "/usr/local/bin/ignition/data"
        assert stored.metadata.annotations["stoker.io/cr-name"] == "minimal"
        assert stored.metadata.labels["stoker.io/agent"] == "true"

        bad = copy.deepcopy(MINIMAL)
        bad["metadata"]["name"] = "bad"
        bad["spec"]["sync"]["profiles"]["default"]["mappings"][0]["destination"] = "../../etc"
        bad["spec"]["sync"]["defaults"] = {"vars": {"my-var": "x"}}

        def rejected() -> Any:
            try:
                custom.create_namespaced_custom_object(
                    "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(bad)
                )
            except ApiException as e:
                return e
            custom.delete_namespaced_custom_object(
                "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "bad"
            )
            return None

        error = wait_until(rejected, timeout=20, what="the validating webhook to refuse")
        assert "mappings[0].destination" in error.body
        assert "my-var" in error.body


def chart_webhook_rights(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, namespace: str, workdir: Path
) -> dict[str, str]:
    """A subprocess environment whose KUBECONFIG carries a ServiceAccount token with exactly
    the rights the chart gives the webhook (its ClusterRole, bound here)."""
    [role] = [
        o
        for o in render(helm, namespace)
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "stoker-webhook"
    ]
    name = f"stoker-webhook-{namespace}"
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_cluster_role({**role, "metadata": {"name": name}})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "stoker-webhook", "namespace": namespace}
            ],
        }
    )
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "stoker-webhook"}})
    token = core.create_namespaced_service_account_token(
        "stoker-webhook", namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    config = yaml.safe_load(kube_env.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = workdir / "webhook.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    return {**kube_env.subprocess_env(), "KUBECONFIG": str(kubeconfig)}


def test_B19_a_pod_without_a_data_volume_starts_without_the_agent_and_a_warning_event(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    gs = custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    env = chart_webhook_rights(helm, kube_env, kube_api, kube_namespace, tmp_path)
    try:
        with serving(env, tmp_path) as (url, bundle):
            mutating, _ = configurations(url, bundle, kube_namespace)
            mutating["webhooks"][0]["sideEffects"] = "NoneOnDryRun"  # as the chart says
            with kube_env.webhook_configuration(kube_api, mutating):
                # A ReplicaSet's pod: no name yet at admission, only generateName.
                bare = gateway_pod("")
                bare["metadata"] = {**bare["metadata"], "generateName": "ignition-"}
                del bare["metadata"]["name"]
                bare["spec"]["volumes"] = [{"name": "config", "emptyDir": {}}]
                bare["spec"]["containers"][0]["volumeMounts"] = []

                def warned() -> Any:
                    stored = kube_core.create_namespaced_pod(kube_namespace, bare)
                    assert not stored.spec.init_containers  # admitted, without the agent
                    events = kube_core.list_namespaced_event(kube_namespace).items
                    return [e for e in events if e.reason == "NoDataVolume"]

                [event] = wait_until(warned, timeout=20, what="the NoDataVolume event")
                # Another pod of the same kind: the same event counts it, none is added.
                kube_core.create_namespaced_pod(kube_namespace, bare)
                [again] = [
                    e
                    for e in kube_core.list_namespaced_event(kube_namespace).items
                    if e.reason == "NoDataVolume"
                ]
                assert again.metadata.name == event.metadata.name
                assert again.count == (event.count or 1) + 1
                dry = copy.deepcopy(bare)
                kube_core.create_namespaced_pod(kube_namespace, dry, dry_run="All")
        assert event.type == "Warning"
        assert event.source.component == "stoker-webhook"
        involved = event.involved_object
        assert (involved.kind, involved.name, involved.uid) == (
            "GatewaySync",
            "minimal",
            gs["metadata"]["uid"],
        )
        assert "pod ignition-* " in event.message
        assert "stoker.io/data-volume" in event.message
        events = kube_core.list_namespaced_event(kube_namespace).items
        assert len([e for e in events if e.reason == "NoDataVolume"]) == 1  # none on dry run
    finally:
        rbac = client.RbacAuthorizationV1Api(kube_api)
        rbac.delete_cluster_role_binding(f"stoker-webhook-{kube_namespace}")
        rbac.delete_cluster_role(f"stoker-webhook-{kube_namespace}")


def fail_opens(kube_env: ControlPlane, webhook: str) -> float:
    """The API server's count of calls to `webhook` that failed and were ignored."""
    return api_server_count(
        kube_env, "apiserver_admission_webhook_fail_open_count", f'name="{webhook}"'
    )


def test_with_the_chart_s_default_policy_an_outage_lets_gateways_start_and_shows_missing_sidecar(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    [mutating] = [
        o
        for o in render(helm, kube_namespace)
        if o["kind"] == "MutatingWebhookConfiguration"
        and o["metadata"]["name"].endswith("-pod-injection")
    ]
    webhook = mutating["webhooks"][0]
    assert webhook["failurePolicy"] == "Ignore"  # the chart's default, under test here
    # The chart's webhook, pointed at a port nobody listens on, for this namespace only.
    name = f"stoker-outage-{kube_namespace}"
    pointed_at_nobody(mutating, kube_namespace, "/mutate-v1-pod", name)
    before = fail_opens(kube_env, webhook["name"])
    with kube_env.webhook_configuration(kube_api, mutating):
        attempt = 0

        def started_without_agent() -> Any:
            nonlocal attempt
            attempt += 1
            stored = kube_core.create_namespaced_pod(kube_namespace, gateway_pod(f"ign-{attempt}"))
            assert not stored.spec.init_containers
            # Counted as a failed, ignored call: the outage really happened for this pod.
            return stored if fail_opens(kube_env, webhook["name"]) > before else None

        stored = wait_until(started_without_agent, timeout=20, what="a pod created in the outage")
    # Scheduled and started without its agent: only then is it a gateway.
    mark_pod_running(kube_core, kube_namespace, stored.metadata.name, node_name="node-1")
    Controller(kube_core, custom).reconcile(
        custom.get_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
        )
    )
    status = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )["status"]
    gateways = {g["podName"]: g["syncStatus"] for g in status["discoveredGateways"]}
    assert gateways[stored.metadata.name] == "MissingSidecar"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["SidecarInjected"]["status"] == "False"
