"""`stoker webhook` under gunicorn with TLS, with the pods and reviews that once broke it (H12):
a gateway whose data volume sits where the agent mounts its own volumes is still created by the
real API server, with the agent; hand-made, malformed reviews get an answer, never a crash."""

from __future__ import annotations

import base64
import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from k8s.test_crd import MINIMAL
from k8s.test_webhook import configurations, gateway_pod, serving
from k8s.test_webhook import webhook_server as webhook_server  # the fixture
from support.kubeenv import ControlPlane, wait_until

pytestmark = pytest.mark.kube


def test_H12_a_gateway_with_its_data_volume_at_an_agent_path_is_created_with_the_agent(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    webhook_server: tuple[str, str],
) -> None:
    url, bundle = webhook_server
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    mutating, _ = configurations(url, bundle, kube_namespace)
    canaries = itertools.count()
    with kube_env.webhook_configuration(kube_api, mutating):
        wait_until(  # the API server loads webhook configurations through an informer
            lambda: (
                kube_core.create_namespaced_pod(
                    kube_namespace, gateway_pod(f"canary-{next(canaries)}")
                ).spec.init_containers
            ),
            timeout=20,
            what="the webhook to inject the agent",
        )
        for n, path in enumerate(["/tmp", "/repo", "/etc/stoker/api-key", "/etc"]):
            body = gateway_pod(f"ignition-{n}")
            body["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = path
            stored = kube_core.create_namespaced_pod(kube_namespace, body)  # once: 422 Invalid
            [agent] = stored.spec.init_containers
            assert agent.name == "stoker-agent"
            mounts = {m.mount_path: m.name for m in agent.volume_mounts}
            assert mounts["/ignition-data"] == "data", path
            env = {e.name: e.value for e in agent.env}
            assert env["DATA_PATH"] == "/ignition-data"
            [gateway] = stored.spec.containers
            assert gateway.volume_mounts[0].mount_path == path  # untouched


def test_H12_malformed_reviews_get_a_json_answer_never_a_crash(
    webhook_server: tuple[str, str], tmp_path: Path
) -> None:
    url, bundle = webhook_server
    ca = tmp_path / "bundle.pem"
    ca.write_bytes(base64.b64decode(bundle))

    def post(path: str, body: bytes) -> requests.Response:
        return requests.post(
            f"{url}{path}",
            data=body,
            headers={"Content-Type": "application/json"},
            verify=str(ca),
            timeout=10,
        )

    def review(obj: Any) -> bytes:
        request = {"uid": "u1", "namespace": "p", "operation": "CREATE", "object": obj}
        return json.dumps({"request": request}).encode()

    inject = {"stoker.io/inject": "true"}
    for bad in (
        {"metadata": "ignition-0"},
        {"metadata": {"annotations": ["stoker.io/inject", "true"]}},
        {"metadata": {"annotations": inject}, "spec": {"containers": "gateway"}},
    ):
        answer = post("/mutate-v1-pod", review(bad))
        assert answer.status_code == 200, bad
        response = answer.json()["response"]
        assert (response["uid"], response["allowed"], "patch" in response) == ("u1", True, False)
    for body in (
        b"[" * 50_000 + b"]" * 50_000,
        review({"spec": json.loads("[" * 500 + "]" * 500)}),
    ):
        answer = post("/mutate-v1-pod", body)
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("bad AdmissionReview")
    answer = post("/validate-gatewaysync", review({**MINIMAL, "metadata": "minimal"}))
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is False
    assert requests.get(f"{url}/healthz", verify=str(ca), timeout=5).ok  # still serving


def test_H12_when_the_webhook_cannot_list_gatewaysyncs_the_failure_policy_decides(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    """A webhook whose ServiceAccount may not list GatewaySyncs answers 503, not a denial:
    under the chart's Ignore the gateway pod starts (without the agent); once it was refused."""
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    kube_core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "nobody"}})
    token = kube_core.create_namespaced_service_account_token(
        "nobody", kube_namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    config = yaml.safe_load(kube_env.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {**kube_env.subprocess_env(), "KUBECONFIG": str(kubeconfig)}
    with serving(env, tmp_path) as (url, bundle):
        mutating, _ = configurations(url, bundle, kube_namespace)
        assert mutating["webhooks"][0]["failurePolicy"] == "Ignore"
        with kube_env.webhook_configuration(kube_api, mutating):
            log = tmp_path / "webhook.log"
            names = itertools.count()

            def started() -> Any:
                stored = kube_core.create_namespaced_pod(
                    kube_namespace, gateway_pod(f"ignition-{next(names)}")
                )
                called = "answering 503" in log.read_text(errors="replace")
                return stored if called else None  # the webhook really was asked

            stored = wait_until(started, timeout=20, what="the webhook to answer 503")
    assert not stored.spec.init_containers  # started, without the agent
