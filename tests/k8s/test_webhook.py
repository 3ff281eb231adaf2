"""`stoker webhook` under gunicorn with TLS, called by the real API server: pods get the
sidecar, invalid GatewaySyncs are refused with every problem at once."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.test_crd import MINIMAL
from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube


@pytest.fixture
def webhook_server(kube_env: ControlPlane, tmp_path: Path) -> Iterator[tuple[str, str]]:
    ca = CertificateAuthority("stoker-webhook-ca")
    cert, key = ca.issue_server("127.0.0.1").write(tmp_path, "webhook")
    port = free_port()
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
        ],
        env=kube_env.subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
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
        if proc.stderr is not None:
            proc.stderr.close()


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
