"""Self-clearing of `stoker.io/requested-ref` on the real API server: the controller removes
only the value it applied, never one the receiver wrote after the controller read the
GatewaySync (issue 16, item 8)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo

pytestmark = pytest.mark.kube
REQUESTED = "stoker.io/requested-ref"


def get(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", "minimal"
    )


def annotate(custom: client.CustomObjectsApi, namespace: str, ref: str) -> None:
    """What the receiver writes for a push."""
    custom.patch_namespaced_custom_object(
        "stoker.io",
        "v1alpha1",
        namespace,
        "gatewaysyncs",
        "minimal",
        {"metadata": {"annotations": {REQUESTED: ref, "stoker.io/requested-by": "github"}}},
    )


@pytest.fixture
def custom(kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path) -> Any:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    api = client.CustomObjectsApi(kube_api)
    api.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    return api


def test_a_requested_ref_equal_to_the_spec_ref_is_cleared_once_applied(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    annotate(custom, kube_namespace, "main")
    Controller(kube_core, custom).reconcile(get(custom, kube_namespace))
    notes = get(custom, kube_namespace)["metadata"]["annotations"]
    assert REQUESTED not in notes
    assert notes["stoker.io/requested-by"] == "github"  # only the ref is cleared


def test_a_ref_the_receiver_wrote_after_the_controller_read_the_gatewaysync_is_kept(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    annotate(custom, kube_namespace, "main")
    seen = get(custom, kube_namespace)  # the controller's copy
    annotate(custom, kube_namespace, "v2.0.0")  # a push lands meanwhile
    Controller(kube_core, custom).reconcile(seen)
    assert get(custom, kube_namespace)["metadata"]["annotations"][REQUESTED] == "v2.0.0"
