"""The pod webhook reads a GatewaySync's spec, never its status. Found on real pods (tests/e2e,
a gateway pod restarted after its first sync): the controller had written a status field the
webhook's strict reader did not know, so the webhook found "no GatewaySync CR" and denied every
new gateway pod; a status written by a newer controller during an upgrade does the same."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.commands.webhook import _clients
from stoker_k8s.connection import connect
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube
CRDS = "src/stoker_k8s/crds"


@pytest.fixture
def lenient_status(kube_env: ControlPlane, kube_api: client.ApiClient) -> Iterator[None]:
    """The GatewaySync CRD with a status, spec and spec.git that keep fields they do not list
    (as a newer release's CRD would hold them); the project's CRD is put back afterwards."""
    ext = client.ApiextensionsV1Api(kube_api)
    crd: Any = ext.read_custom_resource_definition("gatewaysyncs.stoker.io", _preload_content=False)
    body = json.loads(crd.data)
    lenient = copy.deepcopy(body)
    for version in lenient["spec"]["versions"]:
        properties = version["schema"]["openAPIV3Schema"]["properties"]
        for part in (
            properties["status"],
            properties["spec"],
            properties["spec"]["properties"]["git"],
        ):
            part["x-kubernetes-preserve-unknown-fields"] = True
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        lenient["metadata"].pop(key, None)
    lenient.pop("status", None)
    kube_env.install_crds(kube_api, documents=[lenient])
    _until_unknown_fields_kept(kube_api, True)
    try:
        yield
    finally:
        kube_env.install_crds(kube_api, [CRDS])
        _until_unknown_fields_kept(kube_api, False)


def _until_unknown_fields_kept(kube_api: client.ApiClient, kept: bool) -> None:
    """Wait until the API server stores GatewaySyncs by the schema just installed: a CRD that
    is already served stays so while the server switches to a replaced schema, so the CRD's
    conditions cannot tell (an object made meanwhile was pruned by the old one). Asked with a
    server-side dry run, which stores nothing."""
    custom = client.CustomObjectsApi(kube_api)
    body = copy.deepcopy(MINIMAL)
    body["metadata"] = {"name": "schema-probe", "namespace": "default"}
    body["spec"]["git"]["fieldOfANewerRelease"] = "x"
    deadline = time.monotonic() + 30
    while True:
        made = custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", "default", "gatewaysyncs", body, dry_run="All"
        )
        if ("fieldOfANewerRelease" in made["spec"]["git"]) is kept:
            return
        assert time.monotonic() < deadline, "the replaced GatewaySync schema never took effect"
        time.sleep(0.1)


def listed_by_the_webhook(kube_env: ControlPlane, namespace: str) -> list[str]:
    """The GatewaySyncs in `namespace` as the webhook's own client lists them."""
    saved = client.Configuration.get_default_copy()
    try:
        connect(str(kube_env.kubeconfig))
        list_crs, _ = _clients()
        return list(list_crs(namespace))
    finally:
        client.Configuration.set_default(saved)


def test_a_status_field_the_webhook_does_not_know_does_not_hide_the_gatewaysync(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    lenient_status: None,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = copy.deepcopy(MINIMAL)
    body["metadata"] = {"name": "plant", "namespace": kube_namespace}
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    custom.patch_namespaced_custom_object_status(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "plant",
        {"status": {"fieldOfANewerRelease": "x"}},
    )  # fmt: skip
    stored = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "plant"
    )
    assert stored["status"]["fieldOfANewerRelease"] == "x"

    assert listed_by_the_webhook(kube_env, kube_namespace) == ["plant"]


def test_a_spec_field_of_a_newer_release_does_not_hide_the_gatewaysync(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    lenient_status: None,
) -> None:
    """The CRD is upgraded before the webhook (docs/install.md's order) and a GatewaySync uses
    a new field: the old webhook still injects for it instead of denying its gateway pods."""
    custom = client.CustomObjectsApi(kube_api)
    body = copy.deepcopy(MINIMAL)
    body["metadata"] = {"name": "plant", "namespace": kube_namespace}
    body["spec"]["fieldOfANewerRelease"] = {"steps": []}
    body["spec"]["git"]["fieldOfANewerRelease"] = "x"
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    stored = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "plant"
    )
    assert stored["spec"]["git"]["fieldOfANewerRelease"] == "x"

    assert listed_by_the_webhook(kube_env, kube_namespace) == ["plant"]
