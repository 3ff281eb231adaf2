"""The GatewaySync validating webhook during an outage, on the real API server with the chart's
own configuration registered and nothing listening: the receiver's annotation PATCH, deletion
and the finalizer removal go through; a spec change and a guarded (approval) annotation are
refused, as `failurePolicy: Fail` says (issue 16, item 5)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.test_chart import helm as helm  # the fixture
from k8s.test_chart import render
from k8s.test_crd import MINIMAL
from k8s.test_receiver import GLOBAL_TOKEN, post
from k8s.test_receiver import receiver_url as receiver_url  # the fixture
from stoker_core.vocabulary import FINALIZER, GUARDED_ANNOTATIONS
from stoker_k8s.controller import Controller
from support.kubeenv import ControlPlane, wait_until
from support.kubewebhook import pointed_at_nobody

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")


def dead_validation(helm: str, namespace: str) -> dict[str, Any]:
    """The chart's ValidatingWebhookConfiguration, for `namespace` only, pointed at a port
    nobody listens on (the webhook is down)."""
    [validating] = [
        o for o in render(helm, namespace) if o["kind"] == "ValidatingWebhookConfiguration"
    ]
    assert validating["webhooks"][0]["failurePolicy"] == "Fail"  # the chart's, under test here
    name = f"stoker-validation-outage-{namespace}"
    return pointed_at_nobody(validating, namespace, "/validate-gatewaysync", name)


def patch(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> Any:
    return custom.patch_namespaced_custom_object(*GS, namespace, "gatewaysyncs", "minimal", body)


def refused(call: Any) -> str | None:
    """The API server's message when `call` is refused by the unreachable webhook."""
    try:
        call()
    except ApiException as e:
        if "gatewaysync-validate.stoker.io" in (e.body or ""):
            return str(e.body)
        raise
    return None


def test_a_validating_webhook_outage_blocks_spec_changes_only_not_deletion_or_receiver_annotations(
    helm: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    receiver_url: str,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["finalizers"] = [FINALIZER]  # as the controller leaves it
    custom.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
    with kube_env.webhook_configuration(kube_api, dead_validation(helm, kube_namespace)):
        # A spec change is refused once the API server has picked the configuration up.
        message = wait_until(
            lambda: refused(lambda: patch(custom, kube_namespace, {"spec": {"paused": True}})),
            timeout=20,
            what="the API server to call the unreachable validating webhook",
        )
        assert "failed calling webhook" in message
        # So is a change of a guarded annotation (a rollout approval).
        approval = {"metadata": {"annotations": {f"{GUARDED_ANNOTATIONS}commit": "abc"}}}
        assert refused(lambda: patch(custom, kube_namespace, approval))

        # The receiver records a push: its annotation PATCH goes through.
        answer = post(
            receiver_url,
            f"/webhook/{kube_namespace}/minimal",
            {"ref": "v2.0.0"},
            Authorization=f"Bearer {GLOBAL_TOKEN}",
        )
        assert answer.status_code == 202, answer.text
        stored = custom.get_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", "minimal")
        assert stored["metadata"]["annotations"]["stoker.io/requested-ref"] == "v2.0.0"

        # Deletion, then the controller's clean-up and finalizer removal, go through.
        custom.delete_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", "minimal")
        deleting = custom.get_namespaced_custom_object(
            *GS, kube_namespace, "gatewaysyncs", "minimal"
        )
        assert deleting["metadata"]["deletionTimestamp"]
        Controller(kube_core, custom).reconcile(deleting)
        with pytest.raises(ApiException) as gone:
            custom.get_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", "minimal")
        assert gone.value.status == 404
