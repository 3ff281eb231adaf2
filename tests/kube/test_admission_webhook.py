"""The API server really calls a loopback HTTPS mutating webhook, and cleans up after it; what
it does with an HTTP error and with an allowed answer under each failurePolicy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until
from support.kubelet import pod_dict
from support.kubewebhook import serve_webhook

pytestmark = pytest.mark.kube


def webhook_configuration(
    name: str, namespace: str, client_config: dict[str, str]
) -> dict[str, Any]:
    """A Fail-policy pod-CREATE webhook limited to one namespace."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "inject.testenv.stoker.io",
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }


def pod(name: str) -> dict[str, Any]:
    """A one-container pod body."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "gateway"}},
        "spec": {"containers": [{"name": "gateway", "image": "example.invalid/gateway:1"}]},
    }


def inject(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Add a label and an env var to the first container, as a sidecar injector would."""
    return [
        {"op": "add", "path": "/metadata/labels/stoker.io~1injected", "value": "true"},
        {
            "op": "add",
            "path": "/spec/containers/0/env",
            "value": [{"name": "INJECTED_BY", "value": "testenv"}],
        },
    ]


def test_a_mutating_webhook_is_called_on_pod_create_and_its_patch_is_stored(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    ca = CertificateAuthority("webhook-test-ca")
    adm = client.AdmissionregistrationV1Api(kube_api)
    with serve_webhook(inject, ca, tmp_path) as server:
        body = webhook_configuration(
            "testenv-inject", kube_namespace, server.client_config("/mutate")
        )
        with kube_env.mutating_webhook(kube_api, body):
            attempt = 0

            def create_mutated_pod() -> dict[str, Any] | None:
                # The apiserver loads webhook configurations through an informer: retry a canary.
                nonlocal attempt
                attempt += 1
                name = f"gw-{attempt}"
                kube_core.create_namespaced_pod(kube_namespace, pod(name))
                stored = pod_dict(kube_core, kube_namespace, name)
                return stored if "stoker.io/injected" in stored["metadata"]["labels"] else None

            stored = wait_until(create_mutated_pod, timeout=15, what="webhook to be called")

        assert server.reviews, "the webhook server received no AdmissionReview"
        request = server.reviews[-1]["request"]
        assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
        assert request["operation"] == "CREATE"
        assert request["namespace"] == kube_namespace
        assert request["object"]["metadata"]["name"] == stored["metadata"]["name"]

    assert stored["metadata"]["labels"] == {"app": "gateway", "stoker.io/injected": "true"}
    assert stored["spec"]["containers"][0]["env"] == [{"name": "INJECTED_BY", "value": "testenv"}]
    with pytest.raises(ApiException) as gone:
        adm.read_mutating_webhook_configuration("testenv-inject")
    assert gone.value.status == 404


def test_a_fail_policy_webhook_whose_server_is_gone_is_found_and_deleted(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    adm = client.AdmissionregistrationV1Api(kube_api)
    ca = CertificateAuthority()
    dead = {"url": f"https://127.0.0.1:{free_port()}/mutate", "caBundle": ca.ca_bundle}
    adm.create_mutating_webhook_configuration(
        webhook_configuration("testenv-orphan", kube_namespace, dead)
    )

    assert kube_env.delete_orphaned_webhooks(kube_api) == ["mutating/testenv-orphan"]
    listing = json.loads(adm.list_mutating_webhook_configuration(_preload_content=False).data)
    assert "testenv-orphan" not in [c["metadata"]["name"] for c in listing["items"]]


def test_an_allowed_200_admits_a_pod_under_both_policies_and_an_http_400_only_under_ignore(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_core: client.CoreV1Api, tmp_path: Path
) -> None:
    """What the webhook's answer to a malformed review does to a pod: the reason Stoker
    answers a review it cannot read with 200, allowed, no patch (docs/kubernetes.md)."""
    names = iter(range(1000))

    def outcome(answer: int | None, policy: str) -> str:
        # A namespace each: a configuration just deleted may linger in the API server's cache.
        namespace = kube_env.create_namespace(kube_api)
        ca = CertificateAuthority()
        with serve_webhook(lambda request: answer, ca, tmp_path) as server:
            body = webhook_configuration(f"testenv-{namespace}", namespace, server.client_config())
            body["webhooks"][0]["failurePolicy"] = policy

            def called() -> str | None:
                name = f"gw-{next(names)}"
                try:
                    kube_core.create_namespaced_pod(namespace, pod(name))
                    verdict = "created"
                except ApiException as e:
                    verdict = f"refused {e.status}"
                seen = [r["request"].get("name") for r in server.reviews]
                return verdict if name in seen else None

            try:
                with kube_env.webhook_configuration(kube_api, body):
                    return str(wait_until(called, timeout=20, what="the webhook to be called"))
            finally:
                kube_core.delete_namespace(namespace, _preload_content=False)

    assert outcome(400, "Ignore") == "created"
    assert outcome(400, "Fail").startswith("refused")
    assert outcome(None, "Ignore") == "created"
    assert outcome(None, "Fail") == "created"
