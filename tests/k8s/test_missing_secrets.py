"""Missing Secrets on the real API server, before any gateway pod exists: the API key, Git
token, SSH key and known_hosts, GitHub App key and varsFrom Secrets a GatewaySync names are
reported by name in `SecretsAvailable` (Ready False) and one event per change; a Secret's
content never appears; in a namespace the installation does not serve, the controller may not
read Secrets and says it does not know (issue 16, item 3)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from support.apimetrics import api_server_count
from support.gitservers import BareRepo
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")
CONTENT = "s3cr3t-content-never-shown"


def api_key_secret(api: client.ApiClient, namespace: str) -> None:
    """The API key Secret MINIMAL names, for tests of a GatewaySync that should be Ready."""
    try:
        client.CoreV1Api(api).create_namespaced_secret(
            namespace, {"metadata": {"name": "ignition-api-key"}, "stringData": {"apiKey": "k"}}
        )
    except ApiException as e:
        if e.status != 409:
            raise


def get(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(*GS, namespace, "gatewaysyncs", "minimal")


def condition(item: dict[str, Any], kind: str) -> dict[str, Any]:
    [found] = [c for c in item["status"]["conditions"] if c["type"] == kind]
    return found


def secret(core: client.CoreV1Api, namespace: str, name: str, *keys: str) -> None:
    data = {k: base64.b64encode(CONTENT.encode()).decode() for k in keys}
    core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": data})


def events(core: client.CoreV1Api, namespace: str) -> list[Any]:
    found = core.list_namespaced_event(namespace).items
    return [e for e in found if e.reason in ("SecretMissing", "SecretsFound")]


def secret_reads(kube_env: ControlPlane) -> float:
    """The API server's count of GET requests for Secrets."""
    return api_server_count(kube_env, "apiserver_request_total", 'resource="secrets"', 'verb="GET"')


def spec_naming_every_kind(tmp_path: Path, auth: dict[str, Any]) -> dict[str, Any]:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    body["spec"]["git"]["auth"] = auth
    body["spec"]["sync"]["defaults"] = {
        "varsFrom": [{"name": "dbPassword", "secretKeyRef": {"name": "db", "key": "password"}}]
    }
    return body


def test_every_missing_secret_is_named_before_any_pod_needs_it_with_one_event_per_change(
    kube_env: ControlPlane,
    kube_core: client.CoreV1Api,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    ssh = {
        "sshKey": {
            "secretRef": {"name": "git-ssh", "key": "id_ed25519"},
            "knownHosts": {"secretRef": {"name": "git-hosts", "key": "known_hosts"}},
        }
    }
    body = spec_naming_every_kind(tmp_path, ssh)
    custom.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
    secret(kube_core, kube_namespace, "git-hosts", "other")  # there, without the key named
    controller = Controller(kube_core, custom)
    controller.reconcile(get(custom, kube_namespace))
    controller.reconcile(get(custom, kube_namespace))  # a second pass: no second event

    item = get(custom, kube_namespace)
    found = condition(item, "SecretsAvailable")
    assert (found["status"], found["reason"]) == ("False", "SecretMissing")
    ns = kube_namespace
    for said in (
        f"Secret {ns}/ignition-api-key not found (spec.gateway.api)",
        f"Secret {ns}/git-ssh not found (spec.git.auth.sshKey.secretRef)",
        f'key "known_hosts" not in Secret {ns}/git-hosts (spec.git.auth.sshKey.knownHosts',
        f"Secret {ns}/db not found (spec.sync.defaults.varsFrom.dbPassword)",
    ):
        assert said in found["message"]
    ready = condition(item, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretMissing")
    [event] = events(kube_core, kube_namespace)
    assert event.type == "Warning"
    assert "ignition-api-key" in event.message
    assert "varsFrom.dbPassword" in event.message

    # Every Secret created: the condition turns, with one event saying so.
    secret(kube_core, kube_namespace, "ignition-api-key", "apiKey")
    secret(kube_core, kube_namespace, "git-ssh", "id_ed25519")
    secret(kube_core, kube_namespace, "db", "password")
    kube_core.patch_namespaced_secret(
        "git-hosts",
        kube_namespace,
        {"data": {"known_hosts": base64.b64encode(CONTENT.encode()).decode()}},
    )
    controller.reconcile(get(custom, kube_namespace))
    reads = secret_reads(kube_env)
    controller.reconcile(get(custom, kube_namespace))  # all found: not read on every pass
    assert secret_reads(kube_env) == reads
    item = get(custom, kube_namespace)
    assert condition(item, "SecretsAvailable")["status"] == "True"
    assert [e.reason for e in events(kube_core, kube_namespace)].count("SecretsFound") == 1
    everything = str(item) + str(kube_core.list_namespaced_event(kube_namespace).items)
    assert CONTENT not in everything
    assert base64.b64encode(CONTENT.encode()).decode() not in everything


def test_token_and_github_app_key_secrets_are_named_too(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    for name, auth in (
        ("token", {"token": {"secretRef": {"name": "git-token", "key": "token"}}}),
        (
            "app",
            {
                "githubApp": {
                    "appId": 1,
                    "installationId": 2,
                    "privateKeySecretRef": {"name": "app-pem", "key": "private-key.pem"},
                }
            },
        ),
    ):
        body = spec_naming_every_kind(tmp_path / name, auth)
        body["metadata"]["name"] = "minimal"
        custom.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
        Controller(kube_core, custom).reconcile(get(custom, kube_namespace))
        message = condition(get(custom, kube_namespace), "SecretsAvailable")["message"]
        wanted = "git-token" if name == "token" else "app-pem"
        assert f"Secret {kube_namespace}/{wanted} not found (spec.git.auth." in message
        custom.patch_namespaced_custom_object(
            *GS, kube_namespace, "gatewaysyncs", "minimal", {"metadata": {"finalizers": []}}
        )
        custom.delete_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", "minimal")


def test_where_the_controller_may_not_read_secrets_it_says_it_cannot_know(
    kube_core: client.CoreV1Api, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = spec_naming_every_kind(tmp_path, {})
    del body["spec"]["git"]["auth"]
    custom.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
    Controller(kube_core, custom, namespaces=["elsewhere"]).reconcile(get(custom, kube_namespace))
    found = condition(get(custom, kube_namespace), "SecretsAvailable")
    assert (found["status"], found["reason"]) == ("Unknown", "SecretsNotChecked")
    assert f"may not read Secrets in namespace {kube_namespace}" in found["message"]
    assert "ignition-api-key, db exist is not known" in found["message"]
